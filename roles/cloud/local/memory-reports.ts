/**
 * Job reports kept in the process, as the local queues are: the embedded app instances and the controller share it,
 * so a report costs no file write (two a job, its start and its end) and no read. Each is a copy, as an object is.
 */
import type { JobReport } from "../../messages.ts";
import type { JobReports } from "../types.ts";

export class MemoryJobReports implements JobReports {
  private readonly reports = new Map<string, JobReport>();

  async write(report: JobReport): Promise<void> {
    this.reports.set(report.instanceId, structuredClone(report));
  }

  async read(instanceIds: string[]): Promise<JobReport[]> {
    return instanceIds.flatMap((id) => {
      const report = this.reports.get(id);
      return report ? [structuredClone(report)] : [];
    });
  }

  async remove(instanceId: string): Promise<void> {
    this.reports.delete(instanceId);
  }
}
