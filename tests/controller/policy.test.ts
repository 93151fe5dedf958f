import { describe, expect, test } from "bun:test";
import type { AppInstance, InstanceState } from "../../roles/cloud/types.ts";
import { decideScaling, liveHeldJobs, nextIdleSpell, SCALE_IN_READINGS, type ScalingConfig, type ScalingInputs } from "../../roles/controller/policy.ts";

const warm: ScalingConfig = { maxInstances: 15, slotsPerInstance: 1, poolPolicy: "warm", scaleInAfterMs: 1000 };
const cold: ScalingConfig = { ...warm, poolPolicy: "cold" };

function fleet(states: Partial<Record<InstanceState, number>>): AppInstance[] {
  return Object.entries(states).flatMap(([state, count]) =>
    Array.from({ length: count }, (_, i) => ({ id: `${state}-${i}`, state: state as InstanceState })),
  );
}

const inputs = (overrides: Partial<ScalingInputs>): ScalingInputs => ({ now: 10_000, queue: { visible: 0, inFlight: 0 }, instances: [], idle: undefined, ...overrides });

describe("scaling policy", () => {
  test("idle with nothing running does nothing", () => {
    const decision = decideScaling(inputs({ idle: { since: 0, readings: 5 } }), warm);
    expect(decision).toMatchObject({ start: [], launch: 0, stop: [], terminate: [], desired: 0 });
  });

  test("scales out in one step to what the backlog needs, starting stopped instances first", () => {
    const decision = decideScaling(inputs({ queue: { visible: 7, inFlight: 0 }, instances: fleet({ stopped: 5 }) }), warm);
    expect(decision.start).toHaveLength(5);
    expect(decision.launch).toBe(2);
    expect(decision.desired).toBe(7);
  });

  test("counts in-flight messages and slots per instance", () => {
    const decision = decideScaling(inputs({ queue: { visible: 3, inFlight: 6 }, instances: [] }), { ...cold, slotsPerInstance: 4 });
    expect(decision.launch).toBe(3);
  });

  test("never more than 15, whatever the backlog or the configuration", () => {
    const big = decideScaling(inputs({ queue: { visible: 1000, inFlight: 0 } }), { ...cold, maxInstances: 99 });
    expect(big).toMatchObject({ launch: 15, desired: 15 });
    const warmFromStopped = decideScaling(inputs({ queue: { visible: 1000, inFlight: 0 }, instances: fleet({ stopped: 20 }) }), warm);
    expect(warmFromStopped).toMatchObject({ launch: 0, desired: 15 });
    expect(warmFromStopped.start).toHaveLength(15);
    const capped = decideScaling(inputs({ queue: { visible: 1000, inFlight: 0 }, instances: fleet({ running: 4 }) }), { ...cold, maxInstances: 6 });
    expect(capped.launch).toBe(2);
  });

  test("instances still stopping or shutting down count against the limit", () => {
    const warmFull = decideScaling(inputs({ queue: { visible: 1000, inFlight: 0 }, instances: fleet({ running: 10, stopping: 5 }) }), warm);
    expect(warmFull.launch + warmFull.start.length).toBe(0);
    expect(warmFull.reason).toContain("limited to 15");
    const coldDraining = decideScaling(inputs({ queue: { visible: 15, inFlight: 0 }, instances: fleet({ "shutting-down": 12 }) }), cold);
    expect(coldDraining.launch).toBe(3);
  });

  test("a warm pool never launches past max instances in all, stopped ones included", () => {
    const decision = decideScaling(inputs({ queue: { visible: 1000, inFlight: 0 }, instances: fleet({ running: 2, stopped: 3, stopping: 8 }) }), warm);
    expect(decision.start).toHaveLength(3);
    expect(decision.launch).toBe(2);
  });

  test("a growing backlog adds only the missing instances", () => {
    const decision = decideScaling(inputs({ queue: { visible: 6, inFlight: 4 }, instances: fleet({ running: 4, pending: 2 }) }), cold);
    expect(decision).toMatchObject({ launch: 4, desired: 10 });
  });

  test("pending instances count: no second start while they boot", () => {
    const decision = decideScaling(inputs({ queue: { visible: 4, inFlight: 0 }, instances: fleet({ pending: 4, stopped: 3 }) }), warm);
    expect(decision).toMatchObject({ start: [], launch: 0, desired: 4 });
  });

  test("no scale-in while messages remain, even with surplus instances", () => {
    const decision = decideScaling(inputs({ queue: { visible: 0, inFlight: 1 }, instances: fleet({ running: 15 }) }), warm);
    expect(decision).toMatchObject({ stop: [], terminate: [], desired: 15 });
  });

  test("drained: waits scaleInAfterMs with a fake clock, then goes to 0 in one step", () => {
    const running = fleet({ running: 10 });
    const at = (now: number) => decideScaling(inputs({ now, instances: running, idle: { since: 5_000, readings: 5 } }), warm);
    expect(at(5_000).stop).toHaveLength(0);
    expect(at(5_999).stop).toHaveLength(0);
    expect(at(6_000).stop).toHaveLength(10);
    expect(at(6_000).desired).toBe(0);
  });

  test("warm pools stop, cold pools terminate", () => {
    const drained = inputs({ now: 9_000, instances: fleet({ running: 3 }), idle: { since: 1_000, readings: 5 } });
    expect(decideScaling(drained, warm)).toMatchObject({ stop: ["running-0", "running-1", "running-2"], terminate: [], start: [], launch: 0 });
    expect(decideScaling(drained, cold)).toMatchObject({ stop: [], terminate: ["running-0", "running-1", "running-2"], start: [], launch: 0 });
  });

  test("a warm pool stops booting instances once they run (EC2 cannot stop a pending one); a cold pool terminates them at once", () => {
    const drained = inputs({ now: 9_000, instances: fleet({ running: 1, pending: 2, stopped: 4 }), idle: { since: 1_000, readings: 5 } });
    expect(decideScaling(drained, warm)).toMatchObject({ stop: ["running-0"], desired: 0 });
    expect(decideScaling(drained, warm).reason).toContain("2 still booting");
    expect(decideScaling(drained, cold)).toMatchObject({ terminate: ["running-0", "pending-0", "pending-1"], desired: 0 });
  });

  test("a message arriving during the idle wait cancels the scale-in (no flapping)", () => {
    const running = fleet({ running: 3 });
    expect(decideScaling(inputs({ now: 5_500, instances: running, idle: { since: 5_000, readings: 5 } }), warm).stop).toHaveLength(0);
    expect(decideScaling(inputs({ now: 6_500, instances: running, queue: { visible: 1, inFlight: 0 }, idle: undefined }), warm)).toMatchObject({
      stop: [],
      start: [],
      launch: 0,
    });
  });

  test("scale-in needs SCALE_IN_READINGS empty readings in a row as well as scaleInAfterMs", () => {
    const running = fleet({ running: 2 });
    const after = (readings: number) => decideScaling(inputs({ now: 9_000, instances: running, idle: { since: 1_000, readings } }), warm);
    expect(after(SCALE_IN_READINGS - 1)).toMatchObject({ stop: [], desired: 2 });
    expect(after(SCALE_IN_READINGS - 1).reason).toContain(`${SCALE_IN_READINGS - 1} reading(s)`);
    expect(after(SCALE_IN_READINGS).stop).toHaveLength(2);
  });

  test("jobs the instances report holding keep them, whatever the queue's approximate counts say", () => {
    const held = decideScaling(inputs({ now: 9_000, instances: fleet({ running: 3 }), heldJobs: 2, idle: undefined }), warm);
    expect(held).toMatchObject({ stop: [], terminate: [], launch: 0, start: [], desired: 3 });
    expect(held.reason).toContain("backlog 2 covered by 3");
    const more = decideScaling(inputs({ instances: fleet({ running: 1, stopped: 2 }), heldJobs: 3 }), warm);
    expect(more.start).toHaveLength(2);
  });

  test("the idle spell counts readings with an empty queue and no job held; anything else ends it", () => {
    const empty = { visible: 0, inFlight: 0 };
    const first = nextIdleSpell(undefined, empty, 0, 100);
    expect(first).toEqual({ since: 100, readings: 1 });
    expect(nextIdleSpell(first, empty, undefined, 350)).toEqual({ since: 100, readings: 2 });
    expect(nextIdleSpell(first, empty, 1, 350)).toBeUndefined();
    expect(nextIdleSpell(first, { visible: 0, inFlight: 1 }, 0, 350)).toBeUndefined();
  });

  test("a silent instance's report expires: only live reports hold jobs", () => {
    const reports = [
      { instanceId: "a", jobs: 2, at: 10_000 },
      { instanceId: "b", jobs: 5, at: 1_000 },
    ];
    expect(liveHeldJobs(reports, 12_000, 5_000)).toBe(2);
    expect(liveHeldJobs(reports, 5_999, 5_000)).toBe(7);
    expect(liveHeldJobs(reports, 20_000, 5_000)).toBe(0);
  });

  test("a capacity limit holds the scale-out at what EC2 gave, and says so", () => {
    const decision = decideScaling(inputs({ queue: { visible: 15, inFlight: 0 }, instances: fleet({ running: 12, stopped: 3 }), capacityLimit: 12 }), warm);
    expect(decision).toMatchObject({ start: [], launch: 0, desired: 12, capped: true });
    expect(decision.reason).toContain("held at 12 by EC2's capacity");
    const below = decideScaling(inputs({ queue: { visible: 15, inFlight: 0 }, instances: fleet({ running: 10, stopped: 5 }), capacityLimit: 12 }), warm);
    expect(below).toMatchObject({ desired: 12, capped: true });
    expect(below.start).toHaveLength(2);
    const enough = decideScaling(inputs({ queue: { visible: 4, inFlight: 0 }, capacityLimit: 12 }), cold);
    expect(enough).toMatchObject({ launch: 4, capped: false });
  });
});
