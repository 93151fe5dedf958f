import { describe, expect, test } from "bun:test";
import type { AppInstance } from "../../roles/cloud/types.ts";
import { backoffMs, BOOT_WINDOW_MS, bootFailureCap, capacityLimit, judgeBoots, nextCapacityCap, type ScaleOutOutcome } from "../../roles/controller/capacity.ts";

const outcome = (overrides: Partial<ScaleOutOutcome>): ScaleOutOutcome => ({ asked: 5, got: 5, active: 5, capped: false, ...overrides });

describe("capacity cap", () => {
  test.each([
    ["nothing asked: the cap stays as it was", undefined, outcome({ asked: 0, got: 0 }), undefined],
    ["all that was asked came: no cap", undefined, outcome({}), undefined],
    ["fewer came: capped at the active instances, 5 s", undefined, outcome({ got: 3, active: 3 }), { limit: 3, retryAt: 6_000, shortfalls: 1, reason: "3 of 5 instance(s) came" }],
    ["none came, VcpuLimitExceeded: capped, named", undefined, outcome({ got: 0, active: 12, error: "VcpuLimitExceeded" }), { limit: 12, retryAt: 6_000, shortfalls: 1, reason: "VcpuLimitExceeded" }],
    [
      "a second shortfall in a row doubles the backoff",
      { limit: 12, retryAt: 900, shortfalls: 1, reason: "VcpuLimitExceeded" },
      outcome({ got: 0, active: 12, error: "VcpuLimitExceeded" }),
      { limit: 12, retryAt: 11_000, shortfalls: 2, reason: "VcpuLimitExceeded" },
    ],
    ["an ask held down by the cap that came in full keeps the cap", { limit: 12, retryAt: 3_000, shortfalls: 2, reason: "x" }, outcome({ capped: true }), { limit: 12, retryAt: 3_000, shortfalls: 2, reason: "x" }],
    ["an ask past the cap's backoff that came in full lifts it", { limit: 12, retryAt: 900, shortfalls: 2, reason: "x" }, outcome({}), undefined],
  ])("%s", (_, cap, result, expected) => {
    expect(nextCapacityCap(cap, result, 1_000)).toEqual(expected);
  });

  test("the backoff doubles from 5 s up to 5 min", () => {
    expect([1, 2, 3, 4, 7, 8, 20].map(backoffMs)).toEqual([5_000, 10_000, 20_000, 40_000, 300_000, 300_000, 300_000]);
  });

  test("the limit holds until the backoff ends, then the policy may ask again", () => {
    const cap = { limit: 12, retryAt: 6_000, shortfalls: 1, reason: "VcpuLimitExceeded" };
    expect(capacityLimit(cap, 5_999)).toBe(12);
    expect(capacityLimit(cap, 6_000)).toBeUndefined();
    expect(capacityLimit(undefined, 0)).toBeUndefined();
  });
});

describe("boots that fail", () => {
  const NOW = 100_000;
  const PENDING: AppInstance = { id: "i", state: "pending" };
  // [instance as listed before (undefined: no listing showed it yet), as listed now (undefined: not listed),
  //  ms since this controller started or launched it, verdict]
  const cases: [string, AppInstance | undefined, AppInstance | undefined, number, "failed" | "booted" | "settled" | "watched"][] = [
    ["start stopped again, KMS grant missing", undefined, { id: "i", state: "stopped", stateReason: "Client.InternalError" }, 2_000, "failed"],
    ["launch shutting down, KMS grant missing", undefined, { id: "i", state: "shutting-down", stateReason: "Client.InternalError" }, 2_000, "failed"],
    ["launch terminated, volume quota", undefined, { id: "i", state: "terminated", stateReason: "Client.VolumeLimitExceeded" }, 2_000, "failed"],
    ["launch terminated, zone out of machines", undefined, { id: "i", state: "shutting-down", stateReason: "Server.InsufficientInstanceCapacity" }, 2_000, "failed"],
    ["a code with no advice still counts", undefined, { id: "i", state: "shutting-down", stateReason: "Server.InternalError" }, 2_000, "failed"],
    ["down with a failure reason at the end of its first moments, listed running or not before", undefined, { id: "i", state: "shutting-down", stateReason: "Client.InternalError" }, 29_999, "failed"],
    ["terminated through the API: chosen", undefined, { id: "i", state: "shutting-down", stateReason: "Client.UserInitiatedShutdown" }, 2_000, "watched"],
    ["shut down from its OS: chosen", undefined, { id: "i", state: "stopped", stateReason: "Client.InstanceInitiatedShutdown" }, 2_000, "watched"],
    ["a reason that is no EC2 code", undefined, { id: "i", state: "shutting-down", stateReason: "InternalError" }, 2_000, "watched"],
    ["down with no reason", undefined, { id: "i", state: "shutting-down" }, 2_000, "watched"],
    ["pending", undefined, PENDING, 2_000, "watched"],
    ["running, within the window", undefined, { id: "i", state: "running" }, 29_999, "watched"],
    ["running once the window is over", undefined, { id: "i", state: "running" }, BOOT_WINDOW_MS, "booted"],
    ["not listed yet, within the window (a launch the listing does not show yet)", undefined, undefined, 2_000, "watched"],
    ["not listed once the window is over", undefined, undefined, BOOT_WINDOW_MS, "settled"],
    ["stopped by the controller after the window", undefined, { id: "i", state: "stopped", stateReason: "Client.UserInitiatedShutdown" }, BOOT_WINDOW_MS, "settled"],
    // The fleet lists no terminated instance: a shutdown that falls between two readings shows only as a going.
    ["listed pending, then gone: terminated between two readings", PENDING, undefined, 2_000, "failed"],
    ["listed running, then gone, at the end of the window", { id: "i", state: "running" }, undefined, 29_999, "failed"],
    ["listed stopped behind a start, then gone", { id: "i", state: "stopped", stateReason: "Client.UserInitiatedShutdown" }, undefined, 2_000, "failed"],
    ["listed shutting down with no reason (a fleet that lists none), then gone", { id: "i", state: "shutting-down" }, undefined, 2_000, "failed"],
    ["listed terminated with no reason", PENDING, { id: "i", state: "terminated" }, 2_000, "failed"],
    ["listed, then gone once the window is over", PENDING, undefined, BOOT_WINDOW_MS, "settled"],
    ["listed terminated through the API (chosen), then gone", { id: "i", state: "shutting-down", stateReason: "Client.UserInitiatedShutdown" }, undefined, 2_000, "watched"],
    ["listed terminated through the API: chosen", PENDING, { id: "i", state: "terminated", stateReason: "Client.UserInitiatedShutdown" }, 2_000, "watched"],
  ];
  test.each(cases)("%s", (_, seen, instance, age, verdict) => {
    const verdicts = judgeBoots(instance ? [instance] : [], new Map([["i", { since: NOW - age, ...(seen && { seen }) }]]), NOW);
    const found = (["failed", "booted", "settled"] as const).filter((kind) => verdicts[kind].some((entry) => (typeof entry === "string" ? entry : entry.id) === "i"));
    expect(found).toEqual(verdict === "watched" ? [] : [verdict]);
    expect(verdicts.watching.has("i")).toBe(verdict === "watched");
  });

  test("a watched boot remembers how it was last listed, and that it was listed at all", () => {
    const boots = new Map([["i", { since: NOW }]]);
    const first = judgeBoots([], boots, NOW + 1_000);
    expect(first.watching.get("i")).toEqual({ since: NOW });
    const second = judgeBoots([PENDING], first.watching, NOW + 2_000);
    expect(second.watching.get("i")).toEqual({ since: NOW, seen: PENDING });
    expect(judgeBoots([], second.watching, NOW + 3_000).failed).toEqual([{ id: "i", state: "terminated" }]);
  });

  test("only instances this controller started or launched are judged", () => {
    const verdicts = judgeBoots([{ id: "i-other", state: "shutting-down", stateReason: "Client.InternalError" }], new Map([["i-a", { since: NOW }]]), NOW);
    expect(verdicts).toEqual({ failed: [], booted: [], settled: [], watching: new Map([["i-a", { since: NOW }]]) });
  });

  test("the cap holds the fleet at its active instances, names the cause and the fix, and backs off longer with each round", () => {
    const stopped = [{ id: "i-a", state: "stopped" as const, stateReason: "Client.InternalError" }];
    const first = bootFailureCap(stopped, 1, 2, 1_000);
    expect(first).toMatchObject({ limit: 2, retryAt: 6_000, shortfalls: 1 });
    expect(first.reason).toStartWith("started instances stop again as they boot (Client.InternalError): ");
    expect(first.reason).toContain("kms:CreateGrant");
    expect(bootFailureCap(stopped, 3, 2, 1_000).retryAt).toBe(21_000);
    const launched = bootFailureCap([{ id: "i-b", state: "shutting-down", stateReason: "Client.InternalError" }], 1, 0, 0);
    expect(launched.reason).toStartWith("launched instances terminate as they boot (Client.InternalError): ");
    expect(launched.reason).toContain("kms:CreateGrant");
    expect(bootFailureCap([{ id: "i-c", state: "terminated", stateReason: "Server.InternalError" }], 1, 0, 0).reason).toBe("launched instances terminate as they boot (Server.InternalError)");
    const unknown = bootFailureCap([{ id: "i-d", state: "terminated" }], 1, 0, 0).reason;
    expect(unknown).toStartWith("started or launched instances terminate as they boot (reason unknown");
    // A known reason among the round's failures is the one named.
    expect(bootFailureCap([{ id: "i-d", state: "terminated" }, { id: "i-b", state: "shutting-down", stateReason: "Client.InternalError" }], 1, 0, 0).reason).toContain("kms:CreateGrant");
  });
});
