/**
 * The controller role: scales the app fleet between 0 and maxAppInstances from the request queue's depth, and drains
 * the dead-letter queue (dead-letters.ts).
 */
import { deploymentLease } from "../cloud/lease.ts";
import type { ControllerConfig } from "../config.ts";
import type { RoleContext, RunningRole } from "../context.ts";
import { Controller } from "./controller.ts";
import { DeadLetterDrain } from "./dead-letters.ts";

/**
 * `exclusive`: on a deployment, where other processes may run a controller too, act only while holding the controller
 * lease (a standby takes over within a lease term of the holder's death). The embedded mode's fleet is its own.
 */
export interface RunningControllerRole extends RunningRole {
  /** A web role in this process queued a job: an idle fleet is looked at now, not at the next tick. */
  jobQueued(): void;
}

export function startControllerRole({ config, names, cloud, log, health, metrics }: RoleContext<ControllerConfig>, { exclusive = false }: { exclusive?: boolean } = {}): RunningControllerRole {
  const lease = exclusive ? deploymentLease(cloud.blobs.bucket(names.reportsBucket), "controller", log.child({ role: "controller" })) : undefined;
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
    mayAct: lease && (() => lease.holds()),
  });
  const drain = new DeadLetterDrain({
    deadLetterQueue: cloud.queues.queue(names.deadLetterQueue),
    requestQueue: cloud.queues.queue(names.reqQueue),
    queues: cloud.queues,
    maxRedrives: config.maxRedrives,
    log: log.child({ role: "controller" }),
    metrics,
    mayAct: lease && (() => lease.holds()),
  });
  lease?.start();
  controller.start();
  drain.start();
  health?.set("controller", () => ({ ...controller.health(), ...(lease && { lease: lease.holds() ? "held" : "standby" }) }));
  return {
    jobQueued: () => controller.jobQueued(),
    async stop() {
      await Promise.all([controller.stop(), drain.stop()]);
      await lease?.stop();
    },
  };
}
