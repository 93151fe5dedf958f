/** The controller role: scales the app fleet between 0 and maxAppInstances from the request queue's depth. */
import type { ControllerConfig } from "../config.ts";
import type { RoleContext, RunningRole } from "../context.ts";
import { Controller } from "./controller.ts";

export function startControllerRole({ config, names, cloud, log, health, metrics }: RoleContext<ControllerConfig>): RunningRole {
  const controller = new Controller({
    queue: cloud.queues.queue(names.reqQueue),
    fleet: cloud.fleet,
    reports: cloud.reports,
    scaling: {
      maxInstances: config.maxAppInstances,
      slotsPerInstance: config.slotsPerInstance,
      poolPolicy: config.poolPolicy,
      scaleInAfterMs: config.scaleInAfterMs,
    },
    intervalMs: config.controllerIntervalMs,
    noProgressAfterMs: config.noProgressAfterMs,
    log: log.child({ role: "controller" }),
    metrics,
  });
  controller.start();
  health?.set("controller", () => controller.health());
  return controller;
}
