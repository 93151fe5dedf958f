/**
 * The slowest a body may arrive: after a grace period, at least a minimum rate on average, less an allowance so that a
 * small body on a slow link is not cut short. Pure: the caller passes the body's bytes and time. A body that trickles a
 * few bytes a second would otherwise hold an upload slot until the body deadline (FACEFLEET_BODY_TIMEOUT_MS).
 */
export interface BodyPace {
  /** Bytes a second a body must average once the grace is over; 0: no minimum. */
  minBytesPerSecond: number;
  graceMs: number;
}

/** How far behind the rate a body may be: a body this small has the grace plus a second at the rate to arrive. */
export const BODY_PACE_ALLOWANCE_BYTES = 64 * 1024;

/**
 * The moment, in the body's own milliseconds since its reading started, at which a body that has sent `received` bytes
 * falls behind the pace: Infinity when no minimum is set. Its own time leaves out the time the server itself held the
 * body back (a slow store): that is not the sender's doing.
 */
export function behindPaceAt(received: number, pace: BodyPace): number {
  if (pace.minBytesPerSecond === 0) return Infinity;
  return pace.graceMs + ((received + BODY_PACE_ALLOWANCE_BYTES) / pace.minBytesPerSecond) * 1000;
}
