/**
 * Which app instances to replace, a pure function of their job reports, the backlog and the clock:
 * - an instance whose live report says it is unhealthy (it cannot run jobs and has stopped taking them, see
 *   roles/app/consumer.ts) is replaced on its own;
 * - so is an instance listed running for silentAfterMs that has written no report for as long: its service is not up
 *   (on EC2 a service that dies is restarted by systemd while the instance runs on, so one failing at every start, or
 *   a boot that hangs, keeps a running instance that answers nothing);
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
  /** Since when each instance has been listed running (nextRunningSince). */
  runningSince: Record<string, number>;
}

/**
 * How long a running instance may go without writing a report: a boot that waits 30 s for instance metadata and
 * loads the models on a busy t3.small, or a service restarted after a crash (RestartSec=5, then the same boot), writes
 * one well within it.
 */
export const SILENT_AFTER_MS = 120_000;

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

/** Since when each instance has been listed running, as of this listing: kept while it runs, forgotten once it does not. */
export function nextRunningSince(previous: Record<string, number>, active: AppInstance[], now: number): Record<string, number> {
  return Object.fromEntries(active.filter((instance) => instance.state === "running").map((instance) => [instance.id, previous[instance.id] ?? now]));
}

export function decideReplacements(inputs: FleetHealthInputs, noProgressAfterMs: number, silentAfterMs = SILENT_AFTER_MS): FleetHealthDecision {
  const { now, active, reports, watch, runningSince } = inputs;
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
  const lastReport = new Map(reports.map((report) => [report.instanceId, report.at]));
  const silent = Object.entries(runningSince)
    .filter(([id, since]) => activeIds.has(id) && !sick.includes(id) && now - since >= silentAfterMs && now - (lastReport.get(id) ?? -Infinity) >= silentAfterMs)
    .map(([id]) => id);
  const reasons = [
    ...(sick.length > 0 ? [`${sick.length} instance(s) report they cannot run jobs`] : []),
    ...(silent.length > 0 ? [`${silent.length} running instance(s) wrote no report for ${silentAfterMs} ms`] : []),
  ];
  return {
    replace: [...sick, ...silent],
    stalled: false,
    stalledForMs,
    reason: reasons.length > 0 ? `${reasons.join("; ")}: replace them` : "healthy",
  };
}

/** How a warm pool replaces a sick instance: stopped the first time, terminated when it was stopped for it before. */
export function sickReplacement(instanceId: string, stoppedWhenSick: ReadonlySet<string>): "stop" | "terminate" {
  return stoppedWhenSick.has(instanceId) ? "terminate" : "stop";
}
