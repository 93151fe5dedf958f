/**
 * A cap on how many request bodies are read at once. The rest wait their turn, first come first served, for a bounded
 * time, and only so many of them: each waiting request costs the server its connection's read-ahead buffer.
 */
export type ReleaseSlot = () => void;

export class UploadSlots {
  private active = 0;
  private readonly waiting: ((release: ReleaseSlot) => void)[] = [];

  constructor(
    readonly capacity: number,
    private readonly maxWaitMs: number,
    readonly maxQueued: number,
  ) {}

  /** Bodies being read now. */
  get reading(): number {
    return this.active;
  }

  /** Bodies waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** A slot's release once one is free; undefined when none came free within the wait, or too many wait already. */
  acquire(): Promise<ReleaseSlot | undefined> {
    if (this.active < this.capacity) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxQueued) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const grant = (release: ReleaseSlot) => {
        clearTimeout(timer);
        resolve(release);
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(grant), 1);
        resolve(undefined);
      }, this.maxWaitMs);
      this.waiting.push(grant);
    });
  }

  /** Releases once, whatever the caller does: a slot handed on is never handed back twice. */
  private releaser(): ReleaseSlot {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next(this.releaser());
      else this.active--;
    };
  }
}
