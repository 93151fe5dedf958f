/**
 * The scaling decision, KEDA-style: a pure function of the queue's depth, the jobs the app instances report holding,
 * the fleet's instances, the clock and the configuration. Scale out in one step to what the backlog needs, no further
 * than EC2's capacity allowed last time while its backoff runs; scale in only once the queue has been empty and no
 * instance has reported a job for scaleInAfterMs and SCALE_IN_READINGS readings in a row. SQS's counts are
 * approximate (they may lag or read low for up to a minute), so a zero from them alone would stop instances mid-job;
 * the instances' own reports are exact. With SQS nobody can tell which instance is idle, so a partial scale-in could
 * stop one mid-job: there is none.
 */
import type { AppInstance, InstanceState, JobReport, QueueDepth } from "../cloud/types.ts";
import { JOB_REPORT_EXPIRY_MS } from "../deployment.ts";

export interface ScalingConfig {
  maxInstances: number;
  slotsPerInstance: number;
  /** warm: start stopped instances, stop them on scale-in; cold: launch, terminate on scale-in. */
  poolPolicy: "warm" | "cold";
  /** How long the queue must stay empty before the fleet goes to 0. */
  scaleInAfterMs: number;
}

/** The current spell of readings in which the queue read empty and no instance reported a job. */
export interface IdleSpell {
  since: number;
  readings: number;
}

export interface ScalingInputs {
  now: number;
  queue: QueueDepth;
  instances: AppInstance[];
  /** Jobs the active instances' live reports say they hold; undefined when not read (the queue holds messages). */
  heldJobs?: number;
  /** undefined while the queue holds messages or an instance holds a job. */
  idle: IdleSpell | undefined;
  /** The most active instances EC2's capacity allows for now (see capacity.ts); undefined: no known cap. */
  capacityLimit?: number;
}

export interface ScalingDecision {
  start: string[];
  launch: number;
  stop: string[];
  terminate: string[];
  /** Instances wanted pending or running. */
  desired: number;
  /** The capacity cap held the scale-out below what the backlog needs. */
  capped: boolean;
  reason: string;
}

/** Never more than this, whatever the configuration says. */
const HARD_MAX_INSTANCES = 15;
/** Empty readings in a row, besides scaleInAfterMs, before the fleet goes to 0. */
export const SCALE_IN_READINGS = 3;

/** States that hold a machine (and count against the limit): all but stopped and terminated. */
const OCCUPYING: ReadonlySet<InstanceState> = new Set(["pending", "running", "stopping", "shutting-down"]);

const ids = (instances: AppInstance[]) => instances.map((instance) => instance.id);
const inState = (instances: AppInstance[], ...states: InstanceState[]) => instances.filter((instance) => states.includes(instance.state));

/** The jobs held according to the reports that are still live: a silent instance's report expires. */
export function liveHeldJobs(reports: JobReport[], now: number, expiryMs = JOB_REPORT_EXPIRY_MS): number {
  return reports.filter((report) => now - report.at < expiryMs).reduce((sum, report) => sum + report.jobs, 0);
}

/** The idle spell after one more reading. */
export function nextIdleSpell(idle: IdleSpell | undefined, queue: QueueDepth, heldJobs: number | undefined, now: number): IdleSpell | undefined {
  const empty = queue.visible + queue.inFlight === 0 && (heldJobs ?? 0) === 0;
  return empty ? { since: idle?.since ?? now, readings: (idle?.readings ?? 0) + 1 } : undefined;
}

export function decideScaling(inputs: ScalingInputs, config: ScalingConfig): ScalingDecision {
  const max = Math.max(0, Math.min(config.maxInstances, HARD_MAX_INSTANCES));
  const active = inState(inputs.instances, "pending", "running");
  // Jobs held are in flight too, even when the queue's approximate count has not caught up with them.
  const backlog = Math.max(inputs.queue.visible + inputs.queue.inFlight, inputs.heldJobs ?? 0);
  const none = { start: [], launch: 0, stop: [], terminate: [], capped: false };

  if (backlog === 0) {
    if (active.length === 0) return { ...none, desired: 0, reason: "idle" };
    const idleFor = inputs.idle === undefined ? 0 : inputs.now - inputs.idle.since;
    const readings = inputs.idle?.readings ?? 0;
    if (idleFor < config.scaleInAfterMs || readings < SCALE_IN_READINGS) {
      return {
        ...none,
        desired: active.length,
        reason: `queue empty and no job held for ${idleFor} ms, ${readings} reading(s); scale-in after ${config.scaleInAfterMs} ms and ${SCALE_IN_READINGS} readings`,
      };
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

  const needed = Math.min(max, Math.ceil(backlog / Math.max(1, config.slotsPerInstance)));
  const wanted = Math.min(needed, inputs.capacityLimit ?? needed);
  const capped = wanted < needed;
  const capNote = capped ? `; held at ${wanted} by EC2's capacity until its backoff ends` : "";
  const missing = wanted - active.length;
  if (missing <= 0) return { ...none, capped, desired: active.length, reason: `backlog ${backlog} covered by ${active.length} active instance(s)${capNote}` };

  const occupying = inputs.instances.filter((instance) => OCCUPYING.has(instance.state)).length;
  const room = Math.max(0, Math.min(missing, max - occupying));
  const stopped = inState(inputs.instances, "stopped");
  const start = config.poolPolicy === "warm" ? ids(stopped.slice(0, room)) : [];
  // A warm pool keeps every instance it ever launched, so it never grows beyond max in all.
  const poolRoom = config.poolPolicy === "warm" ? max - occupying - stopped.length : room;
  const launch = Math.max(0, Math.min(room - start.length, poolRoom));
  const desired = active.length + start.length + launch;
  const limited = desired < wanted ? `; limited to ${max} instance(s), ${occupying} occupied` : "";
  return { ...none, start, launch, capped, desired, reason: `backlog ${backlog} needs ${needed} instance(s); ${active.length} active${limited}${capNote}` };
}
