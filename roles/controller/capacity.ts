/**
 * When EC2 gives fewer instances than asked (the account's vCPU quota, or a zone out of machines), asking again every
 * tick only repeats the refusal. The controller holds the fleet at what it got and asks again after a backoff that
 * doubles with each shortfall in a row. A pure function of the previous cap and what the last scale-out got.
 * The same holds for instances EC2 accepts to start but that stop again as they boot (`failedBoots`).
 */
import type { AppInstance } from "../cloud/types.ts";
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

/**
 * EC2's StateReason codes of an instance that could not boot ("instance terminates immediately" on a launch, stops
 * again on a start): Client.InternalError is what a volume encrypted under a KMS key the caller may not use
 * (kms:CreateGrant) gives, EBS encryption by default with a customer managed key being the usual way to get there.
 */
const BOOT_FAILURES: Readonly<Record<string, string>> = {
  "Client.InternalError":
    "instances stop again as they boot (Client.InternalError); with EBS encryption by default under a customer managed KMS key, the role that starts them needs kms:CreateGrant on it: run infra/bootstrap.ts again",
  "Client.VolumeLimitExceeded": "instances stop again as they boot (Client.VolumeLimitExceeded): the account's EBS volume quota is reached",
  "Client.InvalidSnapshot.NotFound": "instances stop again as they boot (Client.InvalidSnapshot.NotFound): the image's snapshot is gone",
};

/** Of the instances started or launched and not yet seen running (`booting`), those stopped again for a boot failure. */
export function failedBoots(instances: AppInstance[], booting: ReadonlySet<string>): AppInstance[] {
  return instances.filter((instance) => booting.has(instance.id) && instance.state === "stopped" && instance.stateReason !== undefined && instance.stateReason in BOOT_FAILURES);
}

/**
 * The cap after a round of boots that failed: EC2 took the start but gave nothing, so the fleet stays at its active
 * instances until a backoff that doubles with each such round in a row (`streak`, reset once a booted instance runs).
 */
export function bootFailureCap(failed: AppInstance[], streak: number, active: number, now: number): CapacityCap {
  return { limit: active, retryAt: now + backoffMs(streak), shortfalls: streak, reason: BOOT_FAILURES[failed[0]!.stateReason!]! };
}
