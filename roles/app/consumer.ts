/**
 * The app role's queue consumer: long-polls the request queue and runs up to `slots` jobs at once.
 * A message is deleted only after its reply is sent, so a crash mid-job loses nothing: the message
 * becomes visible again after its visibility timeout and another consumer answers it (and should the
 * delete itself fail, the job is answered twice, which the web role drops as a duplicate).
 */
import type { JobQueue, QueueService, ReceivedMessage } from "../cloud/types.ts";
import { decodeMessage, JobMessageSchema, MessageFormatError, type FailedReply } from "../messages.ts";
import { errorFields, type Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics.ts";
import { handleJob, type JobDependencies } from "./handle-job.ts";

export interface ConsumerOptions {
  requestQueue: JobQueue;
  deadLetterQueue: JobQueue;
  queues: QueueService;
  slots: number;
  visibilityTimeoutSeconds: number;
  /** Receives before the queue moves a job to the dead-letter queue (its redrive policy's maxReceiveCount). */
  maxReceives: number;
  log: Logger;
  metrics: ServiceMetrics;
  job: JobDependencies;
  /** Told the number of jobs held (received, not yet answered) each time it changes. */
  onHolding?(jobs: number): void;
}

const RETRY_PAUSE_MS = 500;
/** A job that failed on a passing fault (storage unreachable, say) is tried again this soon, not a whole visibility timeout later. */
const RETRY_AFTER_SECONDS = 2;
/**
 * Short on purpose. A stopping consumer lets its last poll finish, and answers what it brings, rather than abort
 * it: an aborted poll can live on at the queue's side and take a message that nobody answers until its visibility
 * timeout (handing messages back instead would spend their receive count). One second keeps a stop well inside
 * an instance's shutdown grace.
 */
const POLL_SECONDS = 1;

export class Consumer {
  private stopping = false;
  private readonly running = new Set<Promise<void>>();
  private loop: Promise<void> | undefined;
  private slotFreed: (() => void) | undefined;
  jobsDone = 0;

  constructor(private readonly options: ConsumerOptions) {}

  start(): void {
    this.loop = this.run();
  }

  /** Stops taking jobs and waits for the ones in hand. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.slotFreed?.();
    await this.loop;
    await Promise.all(this.running);
  }

  private async run(): Promise<void> {
    const { requestQueue, slots, visibilityTimeoutSeconds, log } = this.options;
    while (!this.stopping) {
      if (this.running.size >= slots) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        continue;
      }
      let messages: ReceivedMessage[];
      try {
        messages = await requestQueue.receive({
          maxMessages: Math.min(10, slots - this.running.size),
          waitSeconds: POLL_SECONDS,
          visibilityTimeoutSeconds,
        });
      } catch (error) {
        log.error("receive_failed", errorFields(error));
        await Bun.sleep(RETRY_PAUSE_MS);
        continue;
      }
      for (const message of messages) {
        const task = this.process(message)
          .catch((error) => log.error("job_crashed", { messageId: message.messageId, ...errorFields(error) }))
          .finally(() => {
            this.running.delete(task);
            this.options.onHolding?.(this.running.size);
            this.slotFreed?.();
          });
        this.running.add(task);
      }
      if (messages.length > 0) this.options.onHolding?.(this.running.size);
    }
  }

  private async process(message: ReceivedMessage): Promise<void> {
    const { requestQueue, deadLetterQueue, queues, visibilityTimeoutSeconds, log, metrics } = this.options;
    const started = performance.now();
    if (message.receiveCount > 1) metrics.jobRedelivered();
    let job;
    try {
      job = decodeMessage(JobMessageSchema, message.body);
    } catch (error) {
      if (!(error instanceof MessageFormatError)) throw error;
      log.warn("job_malformed", { messageId: message.messageId, ...errorFields(error) });
      await deadLetterQueue.send(message.body);
      await requestQueue.delete(message.receiptHandle);
      metrics.jobDeadLettered("malformed");
      return;
    }
    // Long jobs keep their message invisible, so no second consumer starts on them.
    const heartbeat = setInterval(() => {
      requestQueue.changeVisibility(message.receiptHandle, visibilityTimeoutSeconds).catch(() => {});
    }, (visibilityTimeoutSeconds * 1000) / 2);
    try {
      const reply = await handleJob(job, this.options.job);
      await queues.queue(job.replyTo).send(JSON.stringify(reply));
      await requestQueue.delete(message.receiptHandle);
      this.jobsDone++;
      metrics.jobTried(job.kind, reply.ok ? "answered" : "refused");
      log.info("job_done", {
        jobId: job.jobId,
        kind: job.kind,
        ok: reply.ok,
        ...(!reply.ok ? { code: reply.error.code } : "person" in reply ? { person: reply.person } : {}),
        receiveCount: message.receiveCount,
        ms: Math.round(performance.now() - started),
      });
    } catch (error) {
      log.error("job_failed", { jobId: job.jobId, receiveCount: message.receiveCount, ...errorFields(error) });
      metrics.jobTried(job.kind, "failed");
      if (message.receiveCount >= this.options.maxReceives) {
        metrics.jobDeadLettered("retries_exhausted");
        // Its last try: the job goes to the dead-letter queue next, so its caller hears now rather than at its timeout.
        const reply: FailedReply = {
          ok: false,
          jobId: job.jobId,
          error: { code: "job_failed", message: `the job failed ${message.receiveCount} times and was set aside: ${errorFields(error).error}` },
        };
        await queues.queue(job.replyTo).send(JSON.stringify(reply)).catch(() => {});
      }
      await requestQueue.changeVisibility(message.receiptHandle, RETRY_AFTER_SECONDS).catch(() => {});
    } finally {
      clearInterval(heartbeat);
    }
  }
}
