/**
 * The app role's queue consumer: long-polls the request queue and runs up to `slots` jobs at once.
 * A message is deleted only after its reply is sent, so a crash mid-job loses nothing: the message
 * becomes visible again after its visibility timeout and another consumer answers it (and should the
 * delete itself fail, the job is answered twice, which the web role drops as a duplicate).
 *
 * A bad job (an image the model refuses) is answered. A fault (the model or storage failing, or the job's deadline
 * passing) is this instance's, not the job's: the job is released at once (visibility 0) for a healthy instance, and
 * this one pauses before it takes another (a circuit breaker: 1 s, 2 s, 4 s… while the faults go on; one job at a
 * time until one succeeds). After SICK_AFTER_FAULTS faults in a row on jobs' first tries it reports itself
 * unhealthy, and the controller replaces it. A fault on a job that was tried before (received again, or redriven)
 * still trips the breaker but does not count toward the instance's health: a job that fails on every try (one that
 * crashes its worker, say) would otherwise mark every instance it meets, and a sick instance shows itself on the fresh
 * jobs it takes. Whatever goes wrong decoding the image is not a fault at all: the model answers it as an ImageError,
 * a refusal sent to the caller on the first try (roles/app/handle-job.ts). SQS counts every receive towards the dead-letter queue's maxReceiveCount, and app instances may not
 * send jobs (least privilege), so a released job has spent one receive: the breaker is what keeps a sick instance
 * from spending many. A fast-failing instance without it takes most deliveries, and a job two or three of its tries.
 * A job that spends them all is dead-lettered, and the controller sends it again (roles/controller/dead-letters.ts).
 */
import type { JobQueue, QueueService, ReceivedMessage } from "../cloud/types.ts";
import { decodeMessage, JobMessageSchema, MessageFormatError, type JobMessage } from "../messages.ts";
import { errorFields, type Logger } from "../log.ts";
import type { JobMetrics } from "../metrics.ts";
import { handleJob, type JobDependencies } from "./handle-job.ts";

export interface ConsumerOptions {
  requestQueue: JobQueue;
  deadLetterQueue: JobQueue;
  queues: QueueService;
  slots: number;
  visibilityTimeoutSeconds: number;
  /** Receives before the queue moves a job to the dead-letter queue (its redrive policy's maxReceiveCount). */
  maxReceives: number;
  /** A job worked on this long is abandoned and handed back. */
  jobDeadlineMs: number;
  log: Logger;
  metrics: JobMetrics;
  job: JobDependencies;
  /** Told what this instance's job report says, each time it changes. */
  onStatus?(status: ConsumerStatus): void;
}

export interface ConsumerStatus {
  /** Jobs held: received, not yet answered or handed back. */
  jobs: number;
  healthy: boolean;
  /** Jobs answered. */
  completed: number;
}

/** Faults in a row after which an instance calls itself unhealthy: one may be a passing fault (a throttled call), three is the instance. */
const SICK_AFTER_FAULTS = 3;
const FIRST_FAULT_PAUSE_MS = 1_000;
const MAX_FAULT_PAUSE_MS = 30_000;
const RETRY_PAUSE_MS = 500;

export class JobDeadlineError extends Error {
  override name = "JobDeadlineError";
}
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
  /** Faults in a row; 0 once a job succeeds. */
  private faults = 0;
  /** Of those, the ones on jobs' first tries: the instance's health. */
  private firstTryFaults = 0;
  private pausedUntil = 0;
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
      // After a fault, one job at a time: the next one shows whether the instance works again.
      const room = this.faults > 0 ? 1 - this.running.size : slots - this.running.size;
      if (room <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        continue;
      }
      const pause = this.pausedUntil - Date.now();
      if (pause > 0) {
        await Promise.race([Bun.sleep(pause), new Promise<void>((resolve) => (this.slotFreed = resolve))]);
        continue;
      }
      let messages: ReceivedMessage[];
      try {
        messages = await requestQueue.receive({
          maxMessages: Math.min(10, room),
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
            this.report();
            this.slotFreed?.();
          });
        this.running.add(task);
      }
      if (messages.length > 0) this.report();
    }
  }

  status(): ConsumerStatus {
    return { jobs: this.running.size, healthy: this.firstTryFaults < SICK_AFTER_FAULTS, completed: this.jobsDone };
  }

  private report(): void {
    this.options.onStatus?.(this.status());
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
    // Long jobs keep their message invisible, so no second consumer starts on them; up to the job's deadline.
    const heartbeat = setInterval(() => {
      requestQueue.changeVisibility(message.receiptHandle, visibilityTimeoutSeconds).catch(() => {});
    }, (visibilityTimeoutSeconds * 1000) / 2);
    const abandon = new AbortController();
    const deadline = setTimeout(
      () => abandon.abort(new JobDeadlineError(`the job was abandoned after its deadline of ${this.options.jobDeadlineMs} ms`)),
      this.options.jobDeadlineMs,
    );
    try {
      const reply = await Promise.race([handleJob(job, this.options.job, log, abandon.signal), rejectOnAbort(abandon.signal)]);
      await queues.queue(job.replyTo).send(JSON.stringify(reply));
      await requestQueue.delete(message.receiptHandle);
      this.jobsDone++;
      metrics.jobTried(job.kind, reply.ok ? "answered" : "refused");
      this.recovered();
      log.info("job_done", {
        jobId: job.jobId,
        kind: job.kind,
        ok: reply.ok,
        ...(!reply.ok ? { code: reply.error.code } : "person" in reply ? { person: reply.person } : {}),
        receiveCount: message.receiveCount,
        ms: Math.round(performance.now() - started),
      });
    } catch (error) {
      clearInterval(heartbeat);
      metrics.jobTried(job.kind, "failed");
      this.faulted(message.receiveCount === 1 && !job.redrives);
      await this.handBack(message, job, error);
    } finally {
      clearInterval(heartbeat);
      clearTimeout(deadline);
    }
  }

  private recovered(): void {
    if (this.faults === 0) return;
    this.options.log.info("instance_recovered", { afterFaults: this.faults });
    this.faults = 0;
    this.firstTryFaults = 0;
    this.pausedUntil = 0;
  }

  private faulted(firstTry: boolean): void {
    this.faults++;
    const pauseMs = Math.min(MAX_FAULT_PAUSE_MS, FIRST_FAULT_PAUSE_MS * 2 ** (this.faults - 1));
    this.pausedUntil = Date.now() + pauseMs;
    if (firstTry) this.firstTryFaults++;
    if (firstTry && this.firstTryFaults === SICK_AFTER_FAULTS) {
      this.options.log.warn("instance_unhealthy", { faults: this.faults, firstTryFaults: this.firstTryFaults });
      this.options.metrics.instanceMarkedUnhealthy();
    }
    this.report();
  }

  /**
   * Releases the job at once (visibility 0) for another instance. After its last receive the queue dead-letters it at
   * its next one, and the controller sends it again (roles/controller/dead-letters.ts): this instance's faults are
   * not the job's, so it never answers job_failed itself.
   */
  private async handBack(message: ReceivedMessage, job: JobMessage, error: unknown): Promise<void> {
    const { requestQueue, maxReceives, log } = this.options;
    log.warn("job_handed_back", {
      jobId: job.jobId,
      receiveCount: message.receiveCount,
      lastReceive: message.receiveCount >= maxReceives,
      faults: this.faults,
      ...errorFields(error),
    });
    await requestQueue.changeVisibility(message.receiptHandle, 0).catch((releaseError) => log.warn("job_release_failed", { jobId: job.jobId, ...errorFields(releaseError) }));
  }
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
}
