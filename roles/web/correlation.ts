/**
 * Request/reply correlation: each waiting request registers its job id; a reply is handed to exactly that
 * request, once. Pure: no timers, no I/O — the caller passes the clock.
 */
export type Delivery = "delivered" | "duplicate" | "unknown";

interface Waiter<R> {
  deadline: number;
  resolve(reply: R): void;
  reject(error: Error): void;
}

export class ReplyTimeoutError extends Error {
  constructor(readonly jobId: string) {
    super(`no reply for job ${jobId} in time`);
    this.name = "ReplyTimeoutError";
  }
}

export class PendingReplies<R> {
  private readonly waiting = new Map<string, Waiter<R>>();
  /** Job ids already answered or expired, so a redelivered reply is recognised as a duplicate. Bounded. */
  private readonly settled = new Set<string>();

  constructor(private readonly settledMemory = 100_000) {}

  get size(): number {
    return this.waiting.size;
  }

  wait(jobId: string, deadline: number): Promise<R> {
    if (this.waiting.has(jobId) || this.settled.has(jobId)) throw new Error(`job id ${jobId} is already in use`);
    return new Promise<R>((resolve, reject) => this.waiting.set(jobId, { deadline, resolve, reject }));
  }

  deliver(jobId: string, reply: R): Delivery {
    const waiter = this.waiting.get(jobId);
    if (!waiter) return this.settled.has(jobId) ? "duplicate" : "unknown";
    this.settle(jobId);
    waiter.resolve(reply);
    return "delivered";
  }

  /** Withdraws one waiter (its job was never sent). */
  cancel(jobId: string, error: Error): void {
    const waiter = this.waiting.get(jobId);
    if (!waiter) return;
    this.settle(jobId);
    waiter.reject(error);
  }

  /** Rejects every waiter whose deadline has passed; returns their job ids. */
  expire(now: number): string[] {
    const expired: string[] = [];
    for (const [jobId, waiter] of this.waiting) {
      if (waiter.deadline > now) continue;
      this.settle(jobId);
      waiter.reject(new ReplyTimeoutError(jobId));
      expired.push(jobId);
    }
    return expired;
  }

  /** Rejects every waiter, e.g. at shutdown. */
  cancelAll(error: Error): void {
    for (const [jobId, waiter] of this.waiting) {
      this.settle(jobId);
      waiter.reject(error);
    }
  }

  private settle(jobId: string): void {
    this.waiting.delete(jobId);
    this.settled.add(jobId);
    if (this.settled.size > this.settledMemory) {
      const oldest = this.settled.values().next().value;
      if (oldest !== undefined) this.settled.delete(oldest);
    }
  }
}
