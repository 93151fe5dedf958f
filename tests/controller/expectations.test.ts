import { describe, expect, test } from "bun:test";
import { applyExpectations, type Expectation } from "../../roles/controller/expectations.ts";

const at = 1_000;

describe("expected states over an eventually consistent listing", () => {
  test("a launched instance missing from the listing counts as pending until the listing shows it", () => {
    const launched: Expectation[] = [{ id: "i-new", state: "pending", at }];
    expect(applyExpectations([], launched, at + 500)).toEqual({ instances: [{ id: "i-new", state: "pending" }], outstanding: launched });
    expect(applyExpectations([{ id: "i-new", state: "running" }], launched, at + 900)).toEqual({ instances: [{ id: "i-new", state: "running" }], outstanding: [] });
  });

  test("started but still listed stopped, stopped but still listed running, terminated but still listed stopped", () => {
    const expectations: Expectation[] = [
      { id: "a", state: "pending", at },
      { id: "b", state: "stopping", at },
      { id: "c", state: "shutting-down", at },
    ];
    const listed = [
      { id: "a", state: "stopped" as const },
      { id: "b", state: "running" as const },
      { id: "c", state: "stopped" as const },
      { id: "d", state: "running" as const },
    ];
    const { instances, outstanding } = applyExpectations(listed, expectations, at + 100);
    expect(instances).toEqual([
      { id: "a", state: "pending" },
      { id: "b", state: "stopping" },
      { id: "c", state: "shutting-down" },
      { id: "d", state: "running" },
    ]);
    expect(outstanding).toHaveLength(3);
  });

  test("EC2 lists a stopped instance with the reason of its last stop: a chosen stop is a listing behind the start, a boot failure is the start's outcome", () => {
    const started: Expectation[] = [
      { id: "a", state: "pending", at },
      { id: "b", state: "pending", at },
    ];
    const listed = [
      { id: "a", state: "stopped" as const, stateReason: "Client.UserInitiatedShutdown" },
      { id: "b", state: "stopped" as const, stateReason: "Client.InternalError" },
    ];
    expect(applyExpectations(listed, started, at + 100)).toEqual({ instances: [{ id: "a", state: "pending" }, listed[1]!], outstanding: [started[0]!] });
  });

  test("the listing is believed again after the grace period, and a terminated instance may vanish", () => {
    const expectations: Expectation[] = [
      { id: "a", state: "pending", at },
      { id: "gone", state: "shutting-down", at },
    ];
    expect(applyExpectations([{ id: "a", state: "stopped" }], expectations, at + 10_000)).toEqual({ instances: [{ id: "a", state: "stopped" }], outstanding: [] });
    expect(applyExpectations([], expectations.slice(1), at + 10)).toEqual({ instances: [], outstanding: [] });
  });
});
