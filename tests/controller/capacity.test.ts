import { describe, expect, test } from "bun:test";
import { backoffMs, bootFailureCap, capacityLimit, failedBoots, nextCapacityCap, type ScaleOutOutcome } from "../../roles/controller/capacity.ts";

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
  const booting = new Set(["i-a", "i-b", "i-c"]);
  test("only instances this controller started, stopped again with a boot failure reason, count", () => {
    const failed = failedBoots(
      [
        { id: "i-a", state: "stopped", stateReason: "Client.InternalError" },
        { id: "i-b", state: "stopped", stateReason: "Client.UserInitiatedShutdown" },
        { id: "i-c", state: "pending" },
        { id: "i-d", state: "stopped", stateReason: "Client.InternalError" },
      ],
      booting,
    );
    expect(failed.map((instance) => instance.id)).toEqual(["i-a"]);
  });

  test("the cap holds the fleet at its active instances, names the KMS grant, and backs off longer with each round", () => {
    const failed = [{ id: "i-a", state: "stopped" as const, stateReason: "Client.InternalError" }];
    const first = bootFailureCap(failed, 1, 2, 1_000);
    expect(first).toMatchObject({ limit: 2, retryAt: 6_000, shortfalls: 1 });
    expect(first.reason).toContain("kms:CreateGrant");
    expect(bootFailureCap(failed, 3, 2, 1_000).retryAt).toBe(21_000);
  });
});
