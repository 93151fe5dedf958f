/**
 * The dead-letter queue's drain. The request queue dead-letters a job at its receive after maxReceives (SQS's redrive
 * policy), whatever the cause; with the app instances releasing the jobs they fail on faults of their own
 * (roles/app/consumer.ts), what lands there is almost always a job whose holders died (SIGKILL, a frozen or lost
 * instance), not a bad job. So the controller, the deployment's one singleton (under its lease; in the embedded mode
 * too), drains it:
 * - a job is sent again to the request queue as a new message, its redrive count one higher, up to maxRedrives;
 * - past that it is answered to its caller (job_failed) and kept in the dead-letter queue for the operator, as a copy
 *   marked `failedAt`, hidden between looks: never redriven or answered again;
 * - a message that is not a job is left there for the operator, hidden between looks.
 * The controller and not the app instances: they may not send jobs (least privilege), and one drain sees every
 * dead letter once. A kept message is looked at once every KEEP_HIDDEN_SECONDS (SQS's longest visibility), so the
 * queue never turns it over on every poll; it stays for the queue's retention.
 * Each step is at-least-once: a drain that dies between its send and its delete redrives (or answers) twice, which the
 * web role drops as a duplicate reply.
 */
import type { JobQueue, QueueService, ReceivedMessage } from "../cloud/types.ts";
import { errorFields, type Logger } from "../log.ts";
import { decodeMessage, JobMessageSchema, MessageFormatError, type FailedReply, type JobMessage } from "../messages.ts";
import type { ServiceMetrics } from "../metrics.ts";

export type DeadLetterDecision =
  /** Send `job` to the request queue, delete the dead letter. */
  | { action: "redrive"; job: JobMessage; reason: string }
  /** Answer `reply` to the job's caller, put `kept` in the dead-letter queue, delete the dead letter. */
  | { action: "fail"; job: JobMessage; reply: FailedReply; kept: JobMessage; reason: string }
  /** Leave it for the operator, hidden until the next look. */
  | { action: "keep"; jobId?: string; reason: string };

/** What to do with one dead-lettered message, from its body alone. */
export function decideDeadLetter(body: string, maxRedrives: number, now: number): DeadLetterDecision {
  let job: JobMessage;
  try {
    job = decodeMessage(JobMessageSchema, body);
  } catch (error) {
    if (!(error instanceof MessageFormatError)) throw error;
    return { action: "keep", reason: `malformed: ${error.message}` };
  }
  if (job.failedAt !== undefined) return { action: "keep", jobId: job.jobId, reason: "answered job_failed already" };
  const redrives = job.redrives ?? 0;
  if (redrives < maxRedrives) {
    return { action: "redrive", job: { ...job, redrives: redrives + 1 }, reason: `redrive ${redrives + 1} of ${maxRedrives}` };
  }
  const reply: FailedReply = {
    ok: false,
    jobId: job.jobId,
    error: { code: "job_failed", message: `the job was dead-lettered ${redrives + 1} time(s) (its holders died or failed on every try) and is kept for the operator` },
  };
  return { action: "fail", job, reply, kept: { ...job, failedAt: now }, reason: `dead-lettered after ${redrives} redrive(s) of ${maxRedrives}` };
}

export interface DeadLetterDrainOptions {
  deadLetterQueue: JobQueue;
  requestQueue: JobQueue;
  /** Where the replies to failed jobs go (each job names its reply queue). */
  queues: QueueService;
  maxRedrives: number;
  log: Logger;
  metrics: ServiceMetrics;
  now?: () => number;
  /** The drain runs only while this says so: while this controller holds the lease. */
  mayAct?: () => boolean;
}

/** A dead letter taken but not dealt with (the drain died) is back after this long. */
export const TAKEN_SECONDS = 30;
/**
 * A kept message is looked at again after about 12 hours. SQS refuses a visibility that would end more than 12 hours
 * after the receive, which already gave it TAKEN_SECONDS; a minute more spares the clocks.
 */
export const KEEP_HIDDEN_SECONDS = 12 * 60 * 60 - TAKEN_SECONDS - 60;
/**
 * A stop aborts the poll under way. An aborted SQS poll may still take a message at the queue's side; it is back
 * TAKEN_SECONDS later for whichever drain runs then.
 */
const POLL_SECONDS = 20;
const RETRY_PAUSE_MS = 1_000;

export class DeadLetterDrain {
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(private readonly options: DeadLetterDrainOptions) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { signal } = this.stopping;
    while (!signal.aborted) {
      if (this.options.mayAct?.() === false) {
        await this.pause();
        continue;
      }
      try {
        await this.drainOnce(POLL_SECONDS, signal);
      } catch (error) {
        if (signal.aborted) break;
        this.options.log.error("dead_letter_drain_failed", errorFields(error));
        await this.pause();
      }
    }
  }

  private pause(): Promise<void> {
    const { signal } = this.stopping;
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, RETRY_PAUSE_MS);
      signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
    });
  }

  /** One poll of the dead-letter queue and a decision for each message it brings; exposed for tests. */
  async drainOnce(waitSeconds = POLL_SECONDS, signal?: AbortSignal): Promise<DeadLetterDecision[]> {
    const messages = await this.options.deadLetterQueue.receive({ maxMessages: 10, waitSeconds, visibilityTimeoutSeconds: TAKEN_SECONDS, signal });
    const decisions: DeadLetterDecision[] = [];
    // One message that cannot be dealt with now is back after TAKEN_SECONDS; the others go on.
    for (const message of messages) {
      try {
        decisions.push(await this.handle(message));
      } catch (error) {
        if (signal?.aborted) throw error;
        this.options.log.error("dead_letter_failed", { messageId: message.messageId, ...errorFields(error) });
      }
    }
    return decisions;
  }

  private async handle(message: ReceivedMessage): Promise<DeadLetterDecision> {
    const { deadLetterQueue, requestQueue, queues, maxRedrives, log, metrics } = this.options;
    const decision = decideDeadLetter(message.body, maxRedrives, (this.options.now ?? Date.now)());
    const fields = {
      messageId: message.messageId,
      receiveCount: message.receiveCount,
      maxRedrives,
      action: decision.action,
      reason: decision.reason,
      ...(decision.action === "keep" ? { jobId: decision.jobId } : { jobId: decision.job.jobId, redrives: decision.job.redrives ?? 0 }),
    };
    switch (decision.action) {
      case "redrive":
        await requestQueue.send(JSON.stringify(decision.job));
        await deadLetterQueue.delete(message.receiptHandle);
        metrics.deadLetterDealtWith("redriven");
        log.warn("job_redriven", fields);
        break;
      case "fail":
        // A caller that cannot be answered (its reply queue gone) must not make the kept copy again at every look.
        await queues
          .queue(decision.job.replyTo)
          .send(JSON.stringify(decision.reply))
          .catch((error) => log.warn("job_failed_reply_lost", { jobId: decision.job.jobId, ...errorFields(error) }));
        await deadLetterQueue.send(JSON.stringify(decision.kept));
        await deadLetterQueue.delete(message.receiptHandle);
        metrics.deadLetterDealtWith("failed");
        log.error("job_failed", fields);
        break;
      case "keep":
        await deadLetterQueue.changeVisibility(message.receiptHandle, KEEP_HIDDEN_SECONDS);
        log.info("dead_letter_kept", fields);
        break;
    }
    return decision;
  }
}
