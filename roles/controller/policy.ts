/**
 * The scaling decision, KEDA-style: a pure function of the queue's depth, the fleet's instances, the clock
 * and the configuration. Scale out in one step to what the backlog needs; scale in only once the queue has
 * been fully drained for a while (with SQS nobody can tell which instance is idle, so a partial scale-in
 * could stop one mid-job — its message would survive, but the work would be redone).
 */
import type { AppInstance, QueueDepth } from "../cloud/types.ts";

export interface ScalingConfig {
  maxInstances: number;
  slotsPerInstance: number;
  poolPolicy: "warm" | "cold";
  /** How long the queue must stay empty before the fleet goes to 0. */
  scaleInAfterMs: number;
}

export interface ScalingInputs {
  now: number;
  queue: QueueDepth;
  instances: AppInstance[];
  /** When the queue was first seen empty in the current idle spell; undefined while it holds messages. */
  idleSince: number | undefined;
}

export interface ScalingDecision {
  start: string[];
  launch: number;
  stop: string[];
  terminate: string[];
  /** Instances wanted running after the actions. */
  desired: number;
  reason: string;
}

/** Never more than this, whatever the configuration says. */
export const HARD_MAX_INSTANCES = 15;

const isActive = (instance: AppInstance) => instance.state === "pending" || instance.state === "running";

export function decideScaling(inputs: ScalingInputs, config: ScalingConfig): ScalingDecision {
  const max = Math.min(config.maxInstances, HARD_MAX_INSTANCES);
  const active = inputs.instances.filter(isActive);
  const backlog = inputs.queue.visible + inputs.queue.inFlight;
  const none = { start: [], launch: 0, stop: [], terminate: [] };

  if (backlog === 0) {
    if (active.length === 0) return { ...none, desired: 0, reason: "idle" };
    const idleFor = inputs.idleSince === undefined ? 0 : inputs.now - inputs.idleSince;
    if (idleFor < config.scaleInAfterMs) return { ...none, desired: active.length, reason: `queue empty for ${idleFor} ms; waiting ${config.scaleInAfterMs} ms` };
    const ids = active.map((instance) => instance.id);
    return config.poolPolicy === "warm"
      ? { ...none, stop: ids, desired: 0, reason: `queue drained for ${idleFor} ms: stop all` }
      : { ...none, terminate: ids, desired: 0, reason: `queue drained for ${idleFor} ms: terminate all` };
  }

  const desired = Math.min(max, Math.ceil(backlog / Math.max(1, config.slotsPerInstance)));
  const missing = desired - active.length;
  if (missing <= 0) return { ...none, desired: active.length, reason: `backlog ${backlog} covered by ${active.length} instance(s)` };

  const stopped = inputs.instances.filter((instance) => instance.state === "stopped");
  const start = config.poolPolicy === "warm" ? stopped.slice(0, missing).map((instance) => instance.id) : [];
  // A warm pool never holds more than max instances in all; a cold one never has more than max alive.
  const alive = inputs.instances.filter((instance) => instance.state !== "terminated" && instance.state !== "shutting-down");
  const room = config.poolPolicy === "warm" ? max - alive.length : max - active.length - start.length;
  const launch = Math.max(0, Math.min(missing - start.length, room));
  return {
    ...none,
    start,
    launch,
    desired: active.length + start.length + launch,
    reason: `backlog ${backlog} needs ${desired} instance(s); ${active.length} active`,
  };
}
