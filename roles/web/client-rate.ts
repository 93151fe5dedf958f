/**
 * A token bucket per client: `perSecond` requests a second, in bursts of up to a second's worth (at least one). Pure:
 * no timers, the caller passes the clock. At most `maxClients` buckets are kept, the least recently seen dropped
 * first, so a stranger rotating addresses cannot grow the map; a dropped client comes back with a full bucket.
 */
export const MAX_RATE_LIMITED_CLIENTS = 10_000;

export class ClientRateLimit {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly burst: number;

  constructor(
    readonly perSecond: number,
    private readonly maxClients = MAX_RATE_LIMITED_CLIENTS,
  ) {
    this.burst = Math.max(1, perSecond);
  }

  /** Clients remembered. */
  get size(): number {
    return this.buckets.size;
  }

  /** 0 when `client` may go now (a token is taken), else the milliseconds until it may. */
  take(client: string, now: number): number {
    const bucket = this.buckets.get(client);
    this.buckets.delete(client);
    const tokens = bucket ? Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond) : this.burst;
    const allowed = tokens >= 1;
    this.buckets.set(client, { tokens: allowed ? tokens - 1 : tokens, at: now });
    if (this.buckets.size > this.maxClients) this.buckets.delete(this.buckets.keys().next().value!);
    return allowed ? 0 : Math.ceil(((1 - tokens) / this.perSecond) * 1000);
  }
}
