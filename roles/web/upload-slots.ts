/**
 * A cap on how many request bodies are read at once, and per client. The rest wait their turn for a bounded time, and
 * only so many of them: each waiting request costs the server its connection's read-ahead buffer. Who reads next and
 * who is turned away is `slot-policy.ts`'s pure decision; this is its loop, with the timers.
 */
import { nextGrant, onArrival, type SlotLimits } from "./slot-policy.ts";

export type ReleaseSlot = () => void;

/** A slot's release, or why none was given: `busy` (no slot in time, or no place to wait), `over_share` (this client has its share). */
export type SlotAdmission = { release: ReleaseSlot } | { refused: "busy" | "over_share" };

interface Waiter {
  client: string;
  settle(admission: SlotAdmission): void;
}

export class UploadSlots {
  private readonly readingBy = new Map<string, number>();
  private readingTotal = 0;
  private readonly waiting: Waiter[] = [];

  constructor(
    readonly limits: SlotLimits,
    private readonly maxWaitMs: number,
  ) {}

  /** Bodies being read now. */
  get reading(): number {
    return this.readingTotal;
  }

  /** Bodies waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  acquire(client: string): Promise<SlotAdmission> {
    const arrival = onArrival(this.state(), this.limits, client);
    if (arrival.kind === "refuse") return Promise.resolve({ refused: arrival.reason });
    if (arrival.kind === "read") return Promise.resolve({ release: this.take(client) });
    if (arrival.evict !== undefined) this.waiting.splice(arrival.evict, 1)[0]!.settle({ refused: "over_share" });
    return new Promise((resolve) => {
      const waiter: Waiter = {
        client,
        settle: (admission) => {
          clearTimeout(timer);
          resolve(admission);
        },
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        resolve({ refused: "busy" });
      }, this.maxWaitMs);
      this.waiting.push(waiter);
    });
  }

  private state() {
    return { reading: this.readingBy, readingTotal: this.readingTotal, queue: this.waiting.map((waiter) => waiter.client) };
  }

  private take(client: string): ReleaseSlot {
    this.readingTotal++;
    this.readingBy.set(client, (this.readingBy.get(client) ?? 0) + 1);
    let released = false;
    // Releases once, whatever the caller does: a slot is never handed back twice.
    return () => {
      if (released) return;
      released = true;
      this.readingTotal--;
      const left = this.readingBy.get(client)! - 1;
      if (left === 0) this.readingBy.delete(client);
      else this.readingBy.set(client, left);
      this.grant();
    };
  }

  private grant(): void {
    for (let index = nextGrant(this.state(), this.limits); index !== undefined; index = nextGrant(this.state(), this.limits)) {
      const waiter = this.waiting.splice(index, 1)[0]!;
      waiter.settle({ release: this.take(waiter.client) });
    }
  }
}
