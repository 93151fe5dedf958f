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
  // [instance as listed (undefined: not listed), ms since this controller started or launched it, verdict]
  const cases: [string, AppInstance | undefined, number, "failed" | "booted" | "settled" | "watched"][] = [
    ["start stopped again, KMS grant missing", { id: "i", state: "stopped", stateReason: "Client.InternalError" }, 2_000, "failed"],
    ["launch shutting down, KMS grant missing", { id: "i", state: "shutting-down", stateReason: "Client.InternalError" }, 2_000, "failed"],
    ["launch terminated, volume quota", { id: "i", state: "terminated", stateReason: "Client.VolumeLimitExceeded" }, 2_000, "failed"],
    ["launch terminated, zone out of machines", { id: "i", state: "shutting-down", stateReason: "Server.InsufficientInstanceCapacity" }, 2_000, "failed"],
    ["a code with no advice still counts", { id: "i", state: "shutting-down", stateReason: "Server.InternalError" }, 2_000, "failed"],
    ["down with a failure reason at the end of its first moments, listed running or not before", { id: "i", state: "shutting-down", stateReason: "Client.InternalError" }, 29_999, "failed"],
    ["terminated through the API: chosen", { id: "i", state: "shutting-down", stateReason: "Client.UserInitiatedShutdown" }, 2_000, "watched"],
    ["shut down from its OS: chosen", { id: "i", state: "stopped", stateReason: "Client.InstanceInitiatedShutdown" }, 2_000, "watched"],
    ["a reason that is no EC2 code", { id: "i", state: "shutting-down", stateReason: "InternalError" }, 2_000, "watched"],
    ["down with no reason", { id: "i", state: "shutting-down" }, 2_000, "watched"],
    ["pending", { id: "i", state: "pending" }, 2_000, "watched"],
    ["running, within the window", { id: "i", state: "running" }, 29_999, "watched"],
    ["running once the window is over", { id: "i", state: "running" }, BOOT_WINDOW_MS, "booted"],
    ["not listed yet, within the window (a launch the listing does not show yet)", undefined, 2_000, "watched"],
    ["not listed once the window is over", undefined, BOOT_WINDOW_MS, "settled"],
    ["stopped by the controller after the window", { id: "i", state: "stopped", stateReason: "Client.UserInitiatedShutdown" }, BOOT_WINDOW_MS, "settled"],
  ];
  test.each(cases)("%s", (_, instance, age, verdict) => {
    const verdicts = judgeBoots(instance ? [instance] : [], new Map([["i", NOW - age]]), NOW);
    const found = (["failed", "booted", "settled"] as const).filter((kind) => verdicts[kind].some((entry) => (typeof entry === "string" ? entry : entry.id) === "i"));
    expect(found).toEqual(verdict === "watched" ? [] : [verdict]);
  });

  test("only instances this controller started or launched are judged", () => {
    const verdicts = judgeBoots([{ id: "i-other", state: "shutting-down", stateReason: "Client.InternalError" }], new Map([["i-a", NOW]]), NOW);
    expect(verdicts).toEqual({ failed: [], booted: [], settled: [] });
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
  });
});
