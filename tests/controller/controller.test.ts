import { describe, expect, test } from "bun:test";
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
});
