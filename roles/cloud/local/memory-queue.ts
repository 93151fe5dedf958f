/**
 * An in-process queue with SQS semantics: at-least-once delivery, a visibility timeout after which an
 * unacknowledged message is delivered again (a crashed consumer loses nothing), receive counts, a
 * dead-letter queue after maxReceives receives, a body size limit, and long polls that return as soon
 * as a message is visible.
 */
import { MAX_JOB_MESSAGE_BYTES } from "../../deployment.ts";
import { MessageTooLargeError, type JobQueue, type QueueDepth, type QueueService, type ReceivedMessage } from "../types.ts";


interface StoredMessage {
  messageId: string;
  body: string;
  receiveCount: number;
  visibleAt: number;
  receiptHandle?: string;
}

export interface MemoryQueueOptions {
  visibilityTimeoutSeconds: number;
  maxReceives: number;
  deadLetter?: MemoryQueue;
  maxMessageBytes?: number;
  now?: () => number;
}

export class MemoryQueue implements JobQueue {
  private messages: StoredMessage[] = [];
  private readonly byReceipt = new Map<string, StoredMessage>();
  private readonly waiters = new Set<() => void>();
  private wakeTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly now: () => number;

  constructor(
    readonly name: string,
    private readonly options: MemoryQueueOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  async send(body: string): Promise<string> {
    const size = Buffer.byteLength(body);
    const limit = this.options.maxMessageBytes ?? MAX_JOB_MESSAGE_BYTES;
    if (size > limit) throw new MessageTooLargeError(size, limit);
    const messageId = crypto.randomUUID();
    this.messages.push({ messageId, body, receiveCount: 0, visibleAt: this.now() });
    this.wake();
    return messageId;
  }

  /** Takes in a message redriven from another queue, keeping its id and receive count (the redriving receive included) as SQS does. */
  private adopt(message: StoredMessage): void {
    this.messages.push({ messageId: message.messageId, body: message.body, receiveCount: message.receiveCount + 1, visibleAt: this.now() });
    this.wake();
  }

  async receive(options: { maxMessages: number; waitSeconds: number; visibilityTimeoutSeconds?: number; signal?: AbortSignal }): Promise<ReceivedMessage[]> {
    const deadline = this.now() + options.waitSeconds * 1000;
    for (;;) {
      const taken = this.take(options.maxMessages, options.visibilityTimeoutSeconds ?? this.options.visibilityTimeoutSeconds);
      if (taken.length > 0 || this.now() >= deadline || options.signal?.aborted) return taken;
      await this.waitForChange(deadline - this.now(), options.signal);
    }
  }

  async delete(receiptHandle: string): Promise<void> {
    const message = this.byReceipt.get(receiptHandle);
    if (!message) return;
    this.byReceipt.delete(receiptHandle);
    this.messages = this.messages.filter((m) => m !== message);
  }

  async changeVisibility(receiptHandle: string, seconds: number): Promise<void> {
    const message = this.byReceipt.get(receiptHandle);
    if (!message || message.receiptHandle !== receiptHandle) throw new Error(`receipt handle ${receiptHandle} is no longer valid`);
    message.visibleAt = this.now() + seconds * 1000;
    this.wake();
  }

  async depth(): Promise<QueueDepth> {
    const now = this.now();
    let visible = 0;
    for (const message of this.messages) if (message.visibleAt <= now) visible++;
    return { visible, inFlight: this.messages.length - visible };
  }

  private take(max: number, visibilitySeconds: number): ReceivedMessage[] {
    const now = this.now();
    const taken: ReceivedMessage[] = [];
    for (const message of [...this.messages]) {
      if (taken.length >= max) break;
      if (message.visibleAt > now) continue;
      if (message.receiptHandle) this.byReceipt.delete(message.receiptHandle);
      if (message.receiveCount >= this.options.maxReceives && this.options.deadLetter) {
        this.messages = this.messages.filter((m) => m !== message);
        this.options.deadLetter.adopt(message);
        continue;
      }
      message.receiveCount++;
      message.visibleAt = now + visibilitySeconds * 1000;
      message.receiptHandle = crypto.randomUUID();
      this.byReceipt.set(message.receiptHandle, message);
      taken.push({ messageId: message.messageId, body: message.body, receiptHandle: message.receiptHandle, receiveCount: message.receiveCount });
    }
    if (taken.length > 0) this.scheduleWake();
    return taken;
  }

  private waitForChange(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
      this.scheduleWake();
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Wakes long polls when the earliest in-flight message becomes visible again. */
  private scheduleWake(): void {
    clearTimeout(this.wakeTimer);
    if (this.waiters.size === 0) return;
    let next = Infinity;
    for (const message of this.messages) next = Math.min(next, message.visibleAt);
    if (next === Infinity) return;
    this.wakeTimer = setTimeout(() => this.wake(), Math.max(0, next - this.now()));
  }
}

export class MemoryQueueService implements QueueService {
  private readonly queues = new Map<string, MemoryQueue>();

  constructor(private readonly options: { visibilityTimeoutSeconds: number; maxReceives: number; deadLetterQueue: string }) {}

  queue(name: string): MemoryQueue {
    let queue = this.queues.get(name);
    if (!queue) {
      const deadLetter = name === this.options.deadLetterQueue ? undefined : this.queue(this.options.deadLetterQueue);
      queue = new MemoryQueue(name, { ...this.options, deadLetter });
      this.queues.set(name, queue);
    }
    return queue;
  }
}
