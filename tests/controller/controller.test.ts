import { describe, expect, test } from "bun:test";
import type { AppInstance, Fleet, InstanceState, JobQueue, QueueDepth } from "../../roles/cloud/types.ts";
import { MemoryQueue } from "../../roles/cloud/local/memory-queue.ts";
import { LocalFleet } from "../../roles/cloud/local/process-fleet.ts";
import { Controller } from "../../roles/controller/controller.ts";
import { captureLogs } from "../service/support.ts";

describe("controller loop", () => {
  test("scales a local fleet 0 -> N -> 0 from the queue's depth, logging each decision with its inputs", async () => {
    let clock = 0;
    const queue = new MemoryQueue("requests", { visibilityTimeoutSeconds: 30, maxReceives: 3, now: () => clock });
    const started: string[] = [];
    const fleet = new LocalFleet(async (id) => {
      started.push(id);
      return { stop: async () => {} };
    });
    const logs = captureLogs();
    const controller = new Controller({
      queue,
      fleet,
      scaling: { maxInstances: 15, slotsPerInstance: 1, poolPolicy: "warm", scaleInAfterMs: 1000 },
      intervalMs: 100,
      log: logs.logger,
      now: () => clock,
    });
    const running = async () => (await fleet.list()).filter((i) => i.state === "running").length;

    for (let i = 0; i < 20; i++) await queue.send(`job ${i}`);
    expect((await controller.step()).launch).toBe(15);
    await fleet.settled();
    expect(await running()).toBe(15);

    const messages = await queue.receive({ maxMessages: 20, waitSeconds: 0 });
    for (const message of messages) await queue.delete(message.receiptHandle);
    for (const message of await queue.receive({ maxMessages: 20, waitSeconds: 0 })) await queue.delete(message.receiptHandle);
    expect(await queue.depth()).toEqual({ visible: 0, inFlight: 0 });

    clock = 10_000;
    expect((await controller.step()).stop).toHaveLength(0);
    clock = 10_999;
    expect((await controller.step()).stop).toHaveLength(0);
    clock = 11_000;
    expect((await controller.step()).stop).toHaveLength(15);
    await fleet.settled();
    expect(await running()).toBe(0);

    await queue.send("one more");
    const again = await controller.step();
    expect(again.start).toHaveLength(1);
    expect(again.launch).toBe(0);

    const decisions = logs.lines.filter((line) => line.event === "scaling_decision");
    expect(decisions.length).toBeGreaterThanOrEqual(4);
    expect(decisions[0]).toMatchObject({ queue: { visible: 20, inFlight: 0 }, launch: 15 });
  });

  test("an eventually consistent fleet listing does not make it launch twice or pass the limit", async () => {
    const fleet = new LaggingFleet();
    const depth: QueueDepth = { visible: 1000, inFlight: 0 };
    let clock = 0;
    const logs = captureLogs();
    const controller = new Controller({
      queue: { depth: async () => depth } as Pick<JobQueue, "depth"> as JobQueue,
      fleet,
      scaling: { maxInstances: 15, slotsPerInstance: 1, poolPolicy: "cold", scaleInAfterMs: 1000 },
      intervalMs: 100,
      log: logs.logger,
      now: () => clock,
    });
    for (; clock < 3000; clock += 100) await controller.step();
    expect(fleet.launched).toBe(15);
    expect(fleet.describeCalls).toBe(30);
    // Logged only on change: the launch, the 15 expected pending, the listing catching up with 15 running.
    const decisions = logs.lines.filter((line) => line.event === "scaling_decision");
    expect(decisions.map((line) => [line.instances, line.unconfirmed, line.launch])).toEqual([
      [{}, 0, 15],
      [{ pending: 15 }, 15, 0],
      [{ running: 15 }, 0, 0],
    ]);

    depth.visible = 0;
    await controller.step();
    clock += 999;
    expect((await controller.step()).terminate).toHaveLength(0);
    clock += 1;
    expect((await controller.step()).terminate).toHaveLength(15);
    expect((await controller.step()).terminate).toHaveLength(0);
    expect(fleet.terminated).toBe(15);
  });
});

/** An in-memory fleet whose listing shows each change only after a few calls, as DescribeInstances may. */
class LaggingFleet implements Fleet {
  launched = 0;
  terminated = 0;
  describeCalls = 0;
  private readonly changes: { visibleAfter: number; id: string; state: InstanceState }[] = [];
  private readonly states = new Map<string, InstanceState>();

  async list(): Promise<AppInstance[]> {
    this.describeCalls++;
    for (const change of this.changes) if (change.visibleAfter <= this.describeCalls) this.states.set(change.id, change.state);
    return [...this.states].filter(([, state]) => state !== "terminated").map(([id, state]) => ({ id, state }));
  }

  async launch(count: number): Promise<string[]> {
    const ids = Array.from({ length: count }, () => `i-${++this.launched}`);
    for (const id of ids) this.changes.push({ visibleAfter: this.describeCalls + 5, id, state: "running" });
    return ids;
  }

  async start(): Promise<string[]> {
    throw new Error("a cold pool never starts instances");
  }

  async stop(): Promise<void> {
    throw new Error("a cold pool never stops instances");
  }

  async terminate(ids: string[]): Promise<void> {
    this.terminated += ids.length;
    for (const id of ids) this.changes.push({ visibleAfter: this.describeCalls + 5, id, state: "terminated" });
  }
}
