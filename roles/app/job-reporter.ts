/**
 * Keeps this app instance's job report current: written whenever the number of jobs it holds changes (one write at a
 * time, the latest count last) and rewritten every JOB_REPORT_INTERVAL_MS so that a live instance's report never
 * expires; removed when the instance stops.
 */
import { JOB_REPORT_INTERVAL_MS } from "../deployment.ts";
import type { JobReports } from "../cloud/types.ts";
import { errorFields, type Logger } from "../log.ts";

export class JobReporter {
  private held = 0;
  private writing: Promise<void> | undefined;
  private again = false;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly reports: JobReports,
    private readonly instanceId: string,
    private readonly log: Logger,
    private readonly intervalMs = JOB_REPORT_INTERVAL_MS,
  ) {}

  start(): void {
    this.write();
    this.timer = setInterval(() => this.write(), this.intervalMs);
  }

  holding(jobs: number): void {
    if (jobs === this.held) return;
    this.held = jobs;
    this.write();
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
      .write({ instanceId: this.instanceId, jobs: this.held, at: Date.now() })
      .catch((error) => this.log.warn("job_report_failed", { jobs: this.held, ...errorFields(error) }))
      .finally(() => {
        this.writing = undefined;
        if (this.again) {
          this.again = false;
          this.write();
        }
      });
  }
}
