/**
 * Which app instances to replace, a pure function of their job reports, the backlog and the clock:
 * - an instance whose live report says it is unhealthy (it cannot run jobs and has stopped taking them, see
 *   roles/app/consumer.ts) is replaced on its own;
 * - a fleet that has answered no job for noProgressAfterMs while the queue holds jobs is replaced whole: its jobs are
 *   stuck (a hang the instances' own deadlines did not catch), and the heartbeats that keep them invisible would keep
 *   the fleet up for the queue's whole retention.
 * Replacing is stopping (warm pool) or terminating (cold pool): the scaling policy then brings fresh instances for the
 * backlog. A stopped instance started again boots afresh, usually on other hardware; a warm instance that is sick
 * again after that carries its fault with it (its volume, its image) and is terminated (`sickReplacement`).
 */
import type { AppInstance, JobReport } from "../cloud/types.ts";
import { JOB_REPORT_EXPIRY_MS } from "../deployment.ts";

/** The jobs each instance had answered at the last reading, and since when no more have been answered while work waited. */
export interface ProgressWatch {
  /** The last reading at which a job had been answered since the one before, or the queue was empty. */
  since: number;
  completed: Record<string, number>;
}

export interface FleetHealthInputs {
  now: number;
  /** Pending or running instances. */
  active: AppInstance[];
  reports: JobReport[];
  watch: ProgressWatch;
}

export interface FleetHealthDecision {
  /** Instances to stop or terminate. */
  replace: string[];
  /** The whole fleet is replaced for making no progress. */
  stalled: boolean;
  /** How long the backlog has waited without a job answered. */
  stalledForMs: number;
  reason: string;
}

const live = (report: JobReport, now: number) => now - report.at < JOB_REPORT_EXPIRY_MS;

/** The watch after one more reading: progress when some instance's count of answered jobs grew, or nothing waits. */
export function nextProgressWatch(watch: ProgressWatch | undefined, reports: JobReport[], backlog: number, now: number): ProgressWatch {
  const completed = Object.fromEntries(reports.map((report) => [report.instanceId, report.completed ?? 0]));
  const progressed = watch === undefined || backlog === 0 || reports.some((report) => (report.completed ?? 0) > (watch.completed[report.instanceId] ?? 0));
  return { since: progressed ? now : watch.since, completed };
}

export function decideReplacements(inputs: FleetHealthInputs, noProgressAfterMs: number): FleetHealthDecision {
  const { now, active, reports, watch } = inputs;
  const stalledForMs = now - watch.since;
  if (active.length > 0 && stalledForMs >= noProgressAfterMs) {
    return {
      replace: active.map((instance) => instance.id),
      stalled: true,
      stalledForMs,
      reason: `no job answered for ${stalledForMs} ms while jobs wait: replace all ${active.length} instance(s)`,
    };
  }
  const activeIds = new Set(active.map((instance) => instance.id));
  const sick = reports.filter((report) => activeIds.has(report.instanceId) && report.healthy === false && live(report, now)).map((report) => report.instanceId);
  return {
    replace: sick,
    stalled: false,
    stalledForMs,
    reason: sick.length > 0 ? `${sick.length} instance(s) report they cannot run jobs: replace them` : "healthy",
  };
}

/** How a warm pool replaces a sick instance: stopped the first time, terminated when it was stopped for it before. */
export function sickReplacement(instanceId: string, stoppedWhenSick: ReadonlySet<string>): "stop" | "terminate" {
  return stoppedWhenSick.has(instanceId) ? "terminate" : "stop";
}
