/**
 * EC2's DescribeInstances is eventually consistent: right after RunInstances or StartInstances it may still miss
 * the new instances or show them stopped, and the controller would launch or start again, past the limit.
 * So the controller remembers the state each of its actions should lead to, and for a grace period lays that
 * state over a listing that has not caught up yet.
 */
import type { AppInstance, InstanceState } from "../cloud/types.ts";
import { isBootFailure } from "./capacity.ts";

export interface Expectation {
  id: string;
  state: "pending" | "stopping" | "shutting-down";
  /** When the action was taken. */
  at: number;
}

/** How long an action's effect may take to show in the listing before the listing is believed again. */
const EXPECTATION_GRACE_MS = 10_000;

/** Listed states that show the action has not been seen yet. */
const BEHIND: Record<Expectation["state"], ReadonlySet<InstanceState>> = {
  pending: new Set(["stopped"]),
  stopping: new Set(["pending", "running"]),
  "shutting-down": new Set(["pending", "running", "stopping", "stopped"]),
};

/** The instances as the actions say they must be, and the expectations the listing has not confirmed yet. */
export function applyExpectations(
  listed: AppInstance[],
  expectations: Expectation[],
  now: number,
  graceMs = EXPECTATION_GRACE_MS,
): { instances: AppInstance[]; outstanding: Expectation[] } {
  const instances = new Map(listed.map((instance) => [instance.id, instance]));
  const outstanding: Expectation[] = [];
  for (const expectation of expectations) {
    if (now - expectation.at >= graceMs) continue;
    const seen = instances.get(expectation.id);
    // Missing from the listing: just launched (not visible yet), or gone for good.
    // A start that ended stopped with a boot failure is the start's outcome, not a listing behind it; a stopped
    // instance listed with the reason of its last, chosen stop (Client.UserInitiatedShutdown) is a listing behind.
    const behind = seen ? BEHIND[expectation.state].has(seen.state) && !isBootFailure(seen.stateReason) : expectation.state === "pending";
    if (!behind) continue;
    instances.set(expectation.id, { id: expectation.id, state: expectation.state });
    outstanding.push(expectation);
  }
  return { instances: [...instances.values()], outstanding };
}
