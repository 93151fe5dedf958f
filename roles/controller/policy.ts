/**
 * The scaling decision, KEDA-style: a pure function of the queue's depth, the fleet's instances, the clock
 * and the configuration. Scale out in one step to what the backlog needs; scale in only once the queue has
 * been fully drained for scaleInAfterMs (with SQS nobody can tell which instance is idle, so a partial
 * scale-in could stop one mid-job: its message would survive, but the work would be redone).
 */
import type { AppInstance, InstanceState, QueueDepth } from "../cloud/types.ts";

export interface ScalingConfig {
  maxInstances: number;
  slotsPerInstance: number;
  /** warm: start stopped instances, stop them on scale-in; cold: launch, terminate on scale-in. */
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
  /** Instances wanted pending or running. */
  desired: number;
  reason: string;
}

/** Never more than this, whatever the configuration says. */
const HARD_MAX_INSTANCES = 15;

/** States that hold a machine (and count against the limit): all but stopped and terminated. */
const OCCUPYING: ReadonlySet<InstanceState> = new Set(["pending", "running", "stopping", "shutting-down"]);

const ids = (instances: AppInstance[]) => instances.map((instance) => instance.id);
const inState = (instances: AppInstance[], ...states: InstanceState[]) => instances.filter((instance) => states.includes(instance.state));

export function decideScaling(inputs: ScalingInputs, config: ScalingConfig): ScalingDecision {
  const max = Math.max(0, Math.min(config.maxInstances, HARD_MAX_INSTANCES));
  const active = inState(inputs.instances, "pending", "running");
  const backlog = inputs.queue.visible + inputs.queue.inFlight;
  const none = { start: [], launch: 0, stop: [], terminate: [] };

  if (backlog === 0) {
    if (active.length === 0) return { ...none, desired: 0, reason: "idle" };
    const idleFor = inputs.idleSince === undefined ? 0 : inputs.now - inputs.idleSince;
    if (idleFor < config.scaleInAfterMs) {
      return { ...none, desired: active.length, reason: `queue empty for ${idleFor} ms; scale-in after ${config.scaleInAfterMs} ms` };
    }
    if (config.poolPolicy === "cold") return { ...none, terminate: ids(active), desired: 0, reason: `queue drained for ${idleFor} ms: terminate all` };
    // EC2 refuses to stop a pending instance; it is stopped on a later tick, once running.
    const running = inState(active, "running");
    const booting = active.length - running.length;
    return {
      ...none,
      stop: ids(running),
      desired: 0,
      reason: `queue drained for ${idleFor} ms: stop all${booting > 0 ? `; ${booting} still booting, stopped once running` : ""}`,
    };
  }

  const wanted = Math.min(max, Math.ceil(backlog / Math.max(1, config.slotsPerInstance)));
  const missing = wanted - active.length;
  if (missing <= 0) return { ...none, desired: active.length, reason: `backlog ${backlog} covered by ${active.length} active instance(s)` };

  const occupying = inputs.instances.filter((instance) => OCCUPYING.has(instance.state)).length;
  const room = Math.max(0, Math.min(missing, max - occupying));
  const stopped = inState(inputs.instances, "stopped");
  const start = config.poolPolicy === "warm" ? ids(stopped.slice(0, room)) : [];
  // A warm pool keeps every instance it ever launched, so it never grows beyond max in all.
  const poolRoom = config.poolPolicy === "warm" ? max - occupying - stopped.length : room;
  const launch = Math.max(0, Math.min(room - start.length, poolRoom));
  const desired = active.length + start.length + launch;
  const limited = desired < wanted ? `; limited to ${max} instance(s), ${occupying} occupied` : "";
  return { ...none, start, launch, desired, reason: `backlog ${backlog} needs ${wanted} instance(s); ${active.length} active${limited}` };
}
