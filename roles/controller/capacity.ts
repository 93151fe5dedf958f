/**
 * When EC2 gives fewer instances than asked (the account's vCPU quota, or a zone out of machines), asking again every
 * tick only repeats the refusal. The controller holds the fleet at what it got and asks again after a backoff that
 * doubles with each shortfall in a row. A pure function of the previous cap and what the last scale-out got.
 * The same holds for instances EC2 accepts to start or launch but that stop again or terminate as they boot (`judgeBoots`).
 */
import type { AppInstance, InstanceState } from "../cloud/types.ts";
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
 * How long after its start or launch an instance that goes down with a failure reason is a boot that failed, even if it
 * was listed running for a moment; an instance still running then has booted.
 */
export const BOOT_WINDOW_MS = 30_000;

/** StateReason codes of a shutdown someone chose (through the API, from the instance's OS, a hibernation): not a failure. */
const CHOSEN_SHUTDOWNS: ReadonlySet<string> = new Set(["Client.UserInitiatedShutdown", "Client.InstanceInitiatedShutdown", "Client.UserInitiatedHibernate"]);

const BOOT_FAILURE_ADVICE: Readonly<Record<string, string>> = {
  "Client.VolumeLimitExceeded": "the account's EBS volume quota is reached",
  "Client.InvalidSnapshot.NotFound": "the image's snapshot is gone",
  "Server.InsufficientInstanceCapacity": "the zone has no machines of the type for now",
};

/**
 * What to do about EC2's StateReason codes of an instance that could not boot, where the code alone says it ("instance
 * terminates immediately" on a launch, stops again on a start). Client.InternalError is what a volume encrypted under a
 * KMS key the caller may not use (kms:CreateGrant) gives, EBS encryption by default with a customer managed key being
 * the usual way to get there. Any other Client.* or Server.* code but a chosen shutdown is a failure too.
 * `kmsGrant` says who needs the grant and how to get it: the controller's role, or the operator running infra/launch.ts.
 */
export function bootFailureAdvice(stateReason: string, kmsGrant = "the role that starts and launches them needs kms:CreateGrant on it: run infra/bootstrap.ts again"): string | undefined {
  if (stateReason === "Client.InternalError") return `with EBS encryption by default under a customer managed KMS key, ${kmsGrant}`;
  return BOOT_FAILURE_ADVICE[stateReason];
}

const FAILED_STATES: ReadonlySet<InstanceState> = new Set(["stopped", "shutting-down", "terminated"]);

/** Whether a StateReason code says the instance went down for a fault, not by someone's choice. */
export function isBootFailure(stateReason: string | undefined): boolean {
  return stateReason !== undefined && /^(Client|Server)\./.test(stateReason) && !CHOSEN_SHUTDOWNS.has(stateReason);
}

/** An instance this controller started or launched, whose boot is still judged. */
export interface Boot {
  /** When this controller started or launched it. */
  since: number;
  /** How it was last listed; undefined while no listing has shown it yet (EC2's listing lags a launch). */
  seen?: AppInstance;
}

export interface BootVerdicts {
  /**
   * Stopped again, shutting down or terminated with a failure reason; or, within the window and with no chosen shutdown
   * seen, listed terminated or gone from the listing after it showed the instance (listed `terminated`, no reason).
   */
  failed: AppInstance[];
  /** Running BOOT_WINDOW_MS after its start or launch: the boots work. */
  booted: string[];
  /** Past the window neither running nor failed (never listed, gone after it, stopped by choice): no longer watched. */
  settled: string[];
  /** The boots still judged, each with how it is listed now. */
  watching: Map<string, Boot>;
}

/** A shutdown someone chose, seen in the listing before the instance went: its going is no failure. */
function chosenShutdown(instance: AppInstance | undefined): boolean {
  return instance !== undefined && (instance.state === "shutting-down" || instance.state === "terminated") && CHOSEN_SHUTDOWNS.has(instance.stateReason ?? "");
}

/**
 * The verdict on each instance this controller started or launched and still watches. The caller forgets an instance
 * it terminates itself, so a watched instance that goes was not terminated by this controller. A launch missing from
 * the listing is one the listing does not show yet, until the listing has shown it: only listed, then gone, counts.
 */
export function judgeBoots(instances: AppInstance[], booting: ReadonlyMap<string, Boot>, now: number): BootVerdicts {
  const listed = new Map(instances.map((instance) => [instance.id, instance]));
  const verdicts: BootVerdicts = { failed: [], booted: [], settled: [], watching: new Map() };
  for (const [id, { since, seen }] of booting) {
    const instance = listed.get(id);
    const inWindow = now - since < BOOT_WINDOW_MS;
    const gone = instance ? instance.state === "terminated" : seen !== undefined;
    if (instance && FAILED_STATES.has(instance.state) && isBootFailure(instance.stateReason)) verdicts.failed.push(instance);
    // The whole shutdown fell between two readings (or the fleet lists no reason): why is unknown.
    else if (gone && inWindow && !chosenShutdown(instance ?? seen)) verdicts.failed.push({ id, state: "terminated" });
    else if (!inWindow) verdicts[instance?.state === "running" ? "booted" : "settled"].push(id);
    else verdicts.watching.set(id, { since, seen: instance ?? seen });
  }
  return verdicts;
}

/**
 * The cap after a round of boots that failed: EC2 took the start or launch but gave nothing, so the fleet stays at its
 * active instances until a backoff that doubles with each such round in a row (`streak`, reset once a boot works).
 */
export function bootFailureCap(failed: AppInstance[], streak: number, active: number, now: number): CapacityCap {
  const { state, stateReason } = failed.find((instance) => instance.stateReason !== undefined) ?? failed[0]!;
  const cap = { limit: active, retryAt: now + backoffMs(streak), shortfalls: streak };
  if (stateReason === undefined) {
    return { ...cap, reason: "started or launched instances terminate as they boot (reason unknown: gone from the listing, not terminated by this controller, before it showed why)" };
  }
  const what = state === "stopped" ? "started instances stop again" : "launched instances terminate";
  const advice = bootFailureAdvice(stateReason);
  return { ...cap, reason: `${what} as they boot (${stateReason})${advice ? `: ${advice}` : ""}` };
}
