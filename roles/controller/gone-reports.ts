/**
 * Which job reports to delete: those of instances that are gone (stopped, terminated, or no longer listed). An instance
 * that stops cleanly removes its own report; one that was killed or lost leaves it behind, and nothing else would ever
 * delete it. A pure function of the listing and of the instances that may still have a report.
 */
import type { AppInstance, InstanceState } from "../cloud/types.ts";

const GONE: ReadonlySet<InstanceState> = new Set(["stopped", "terminated"]);

export interface GoneReports {
  /** Instances whose report to delete now. */
  remove: string[];
  /** Instances that may have a report: the listed ones not gone. */
  mayHaveReport: Set<string>;
}

/**
 * `mayHaveReport` undefined: the first look (a controller just started knows nothing of the instances' past), so
 * every gone instance listed may have left a report. An instance that vanished from the listing was terminated.
 */
export function goneReports(instances: AppInstance[], mayHaveReport: ReadonlySet<string> | undefined): GoneReports {
  const listed = new Set(instances.map((instance) => instance.id));
  const gone = instances.filter((instance) => GONE.has(instance.state) && (mayHaveReport === undefined || mayHaveReport.has(instance.id))).map((instance) => instance.id);
  const vanished = [...(mayHaveReport ?? [])].filter((id) => !listed.has(id));
  return {
    remove: [...gone, ...vanished],
    mayHaveReport: new Set(instances.filter((instance) => !GONE.has(instance.state)).map((instance) => instance.id)),
  };
}
