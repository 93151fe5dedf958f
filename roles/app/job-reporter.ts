/**
 * Keeps this app instance's job report current: written whenever the number of jobs it holds or its health changes
 * (one write at a time, the latest status last) and rewritten every JOB_REPORT_INTERVAL_MS so that a live instance's report never
 * expires; removed when the instance stops. Each write carries the instance's job counters as they are then: a job
 * ends with a change in the jobs held, so the counters need no writes of their own.
 */
import { JOB_REPORT_INTERVAL_MS } from "../deployment.ts";
import type { JobReports } from "../cloud/types.ts";
import type { JobCounts } from "../messages.ts";
import { errorFields, type Logger } from "../log.ts";
import type { ConsumerStatus } from "./consumer.ts";

export class JobReporter {
  private status: ConsumerStatus = { jobs: 0, healthy: true, completed: 0 };
  private writing: Promise<void> | undefined;
  private again = false;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly reports: JobReports,
    private readonly instanceId: string,
    private readonly log: Logger,
    private readonly counts: () => JobCounts,
    private readonly intervalMs = JOB_REPORT_INTERVAL_MS,
  ) {}

  start(): void {
    this.write();
    this.timer = setInterval(() => this.write(), this.intervalMs);
  }

  update(status: ConsumerStatus): void {
    const changed = status.jobs !== this.status.jobs || status.healthy !== this.status.healthy;
    this.status = status;
    if (changed) this.write();
  }

  /** Waits for the write under way, if any (and the one queued behind it). */
  async settled(): Promise<void> {
    while (this.writing) await this.writing;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.settled();
    await this.reports.remove(this.instanceId).catch((error) => this.log.warn("job_report_remove_failed", errorFields(error)));
  }

  private write(): void {
    if (this.writing) {
      this.again = true;
      return;
    }
    this.writing = this.reports
      .write({ instanceId: this.instanceId, ...this.status, counts: this.counts(), at: Date.now() })
      .catch((error) => this.log.warn("job_report_failed", { ...this.status, ...errorFields(error) }))
      .finally(() => {
        this.writing = undefined;
        if (this.again) {
          this.again = false;
          this.write();
        }
      });
  }
}
