/**
 * AWS's documented propagation windows, as the emulated region plays them: a change is made at once but read back as
 * it was for a while ("SetQueueAttributes: up to 60 s, MessageRetentionPeriod up to 15 minutes"; a lifecycle
 * configuration "a few minutes"; IAM "several minutes"). No timers: the caller passes the clock.
 */
export class LaggingReads<V> {
  /** Key -> the value read back until `until`. */
  private readonly previous = new Map<string, { value: V | undefined; until: number }>();

  /** `key` changed from `before` at `now`; it reads as `before` for `lagMs` (a change while lagging keeps the oldest value). */
  changed(key: string, before: V | undefined, lagMs: number, now: number): void {
    if (lagMs <= 0) return;
    const lagging = this.shown(key, now);
    this.previous.set(key, { value: lagging ? lagging.value : before, until: now + lagMs });
  }

  /** What a read of `key` answers at `now` while the change lags (`value` undefined: it did not exist); undefined once it shows. */
  shown(key: string, now: number): { value: V | undefined } | undefined {
    const entry = this.previous.get(key);
    if (!entry) return undefined;
    if (entry.until <= now) {
      this.previous.delete(key);
      return undefined;
    }
    return { value: entry.value };
  }

  forget(keyPrefix: string): void {
    for (const key of this.previous.keys()) if (key.startsWith(keyPrefix)) this.previous.delete(key);
  }
}
