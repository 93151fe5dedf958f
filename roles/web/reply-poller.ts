/** The one response-queue consumer of a web process: hands each reply to the request waiting for it. */
import type { JobQueue } from "../cloud/types.ts";
import { LONG_POLL_SECONDS } from "../deployment.ts";
import { decodeMessage, ReplyEnvelopeSchema, ReplySchemas, type JobKind, type ReplyTo } from "../messages.ts";
import { errorFields, type Logger } from "../log.ts";
import { PendingReplies } from "./correlation.ts";

const EXPIRY_TICK_MS = 200;
const RETRY_PAUSE_MS = 500;

export class ReplyPoller {
  /** Each waiting request gets its reply's body, and decodes it with the schema of the kind of job it submitted. */
  readonly pending = new PendingReplies<string>();
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private expiryTimer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly queue: JobQueue,
    private readonly log: Logger,
    /**
     * The poller takes replies only while this says so: while its process holds the web lease. One that lost it (cut
     * off from S3 for a lease term) may have been replaced, and two consumers would take each other's replies.
     */
    private readonly mayPoll: () => boolean = () => true,
  ) {}

  start(): void {
    this.expiryTimer = setInterval(() => this.expireOverdue(), EXPIRY_TICK_MS);
    this.loop = this.run();
  }

  waitFor<K extends JobKind>(jobId: string, kind: K, timeoutMs: number): Promise<ReplyTo<K>> {
    return this.pending.wait(jobId, Date.now() + timeoutMs).then((body) => decodeMessage(ReplySchemas[kind], body) as ReplyTo<K>);
  }

  cancel(jobId: string, error: Error): void {
    this.pending.cancel(jobId, error);
  }

  async stop(): Promise<void> {
    clearInterval(this.expiryTimer);
    this.abort.abort();
    await this.loop;
    this.pending.cancelAll(new Error("web role is shutting down"));
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let paused = false;
    while (!signal.aborted) {
      if (!this.mayPoll()) {
        if (!paused) this.log.error("reply_polling_paused", { reason: "this process no longer holds the web lease" });
        paused = true;
        await Bun.sleep(RETRY_PAUSE_MS);
        continue;
      }
      if (paused) this.log.info("reply_polling_resumed");
      paused = false;
      try {
        const messages = await this.queue.receive({ maxMessages: 10, waitSeconds: LONG_POLL_SECONDS, signal });
        await Promise.all(messages.map((message) => this.handle(message.body, message.receiptHandle)));
      } catch (error) {
        if (signal.aborted) break;
        this.log.error("reply_poll_failed", errorFields(error));
        await Bun.sleep(RETRY_PAUSE_MS);
      }
    }
  }

  /** Runs on a timer and before each delivery, so a reply after its request's deadline never counts. */
  private expireOverdue(): void {
    for (const jobId of this.pending.expire(Date.now())) this.log.warn("reply_timeout", { jobId });
  }

  private async handle(body: string, receiptHandle: string): Promise<void> {
    try {
      const { jobId } = decodeMessage(ReplyEnvelopeSchema, body);
      this.expireOverdue();
      const delivery = this.pending.deliver(jobId, body);
      if (delivery !== "delivered") this.log.info("reply_dropped", { jobId, reason: delivery });
    } catch (error) {
      this.log.warn("reply_malformed", errorFields(error));
    }
    await this.queue.delete(receiptHandle);
  }
}
