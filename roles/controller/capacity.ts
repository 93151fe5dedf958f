/**
 * When EC2 gives fewer instances than asked (the account's vCPU quota, or a zone out of machines), asking again every
 * tick only repeats the refusal. The controller holds the fleet at what it got and asks again after a backoff that
 * doubles with each shortfall in a row. A pure function of the previous cap and what the last scale-out got.
 */
export interface CapacityCap {
  /** Active instances (pending or running) EC2 let the fleet reach. */
  limit: number;
  /** Nothing more is asked for before this time. */
  retryAt: number;
  /** Shortfalls in a row; the backoff doubles with each. */
  shortfalls: number;
  /** EC2's error code, or how many of the asked-for instances came. */
  reason: string;
}

export interface ScaleOutOutcome {
  /** Instances asked for (starts and launches). */
  asked: number;
  /** Instances that came. */
  got: number;
  /** Active instances now, those that came included. */
  active: number;
  /** The capacity error's code, when there was one. */
  error?: string;
  /** The ask was already held down by the cap: getting it all says nothing about capacity beyond the cap. */
  capped: boolean;
}

const FIRST_BACKOFF_MS = 5_000;
const MAX_BACKOFF_MS = 5 * 60_000;

export function backoffMs(shortfalls: number): number {
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, shortfalls - 1));
}

export function nextCapacityCap(cap: CapacityCap | undefined, outcome: ScaleOutOutcome, now: number): CapacityCap | undefined {
  if (outcome.asked === 0) return cap;
  if (outcome.got >= outcome.asked) return outcome.capped ? cap : undefined;
  const shortfalls = (cap?.shortfalls ?? 0) + 1;
  return {
    limit: outcome.active,
    retryAt: now + backoffMs(shortfalls),
    shortfalls,
    reason: outcome.error ?? `${outcome.got} of ${outcome.asked} instance(s) came`,
  };
}

/** The most active instances the policy may aim for now; undefined once the backoff has passed (ask again). */
export function capacityLimit(cap: CapacityCap | undefined, now: number): number | undefined {
  return cap && now < cap.retryAt ? cap.limit : undefined;
}
