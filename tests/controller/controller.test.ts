import { describe, expect, test } from "bun:test";
import { CapacityError, type AppInstance, type Fleet, type InstanceState, type JobQueue, type JobReport, type JobReports, type QueueDepth } from "../../roles/cloud/types.ts";
import { MemoryQueue } from "../../roles/cloud/local/memory-queue.ts";
import { LocalFleet } from "../../roles/cloud/local/process-fleet.ts";
import { Controller } from "../../roles/controller/controller.ts";
import { SILENT_AFTER_MS } from "../../roles/controller/fleet-health.ts";
import { JOB_REPORT_EXPIRY_MS } from "../../roles/deployment.ts";
import { captureLogs } from "../service/support.ts";
import { waitFor } from "../support/waiting.ts";
import { MemoryJobReports } from "../../roles/cloud/local/memory-reports.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";

describe("controller loop", () => {
  test("deletes the job report of an instance that is gone (killed: stopped, or terminated and unlisted), once", async () => {
    const reports = new MemoryJobReports();
    for (const instanceId of ["i-a", "i-b"]) await reports.write({ instanceId, jobs: 1, at: 0 });
    const states = new Map<string, InstanceState>([["i-a", "running"], ["i-b", "running"]]);
    let removes = 0;
    const fleet: Fleet = { list: async () => [...states].map(([id, state]) => ({ id, state })), launch: async () => [], start: async () => [], stop: async () => {}, terminate: async () => {} };
    const counted: JobReports = { write: (report) => reports.write(report), read: (ids) => reports.read(ids), remove: (id) => (removes++, reports.remove(id)) };
    const logs = captureLogs();
    const controller = new Controller({
      queue: new MemoryQueue("requests", { visibilityTimeoutSeconds: 30, maxReceives: 3 }),
      fleet,
      reports: counted,
      scaling: { maxInstances: 2, slotsPerInstance: 1, poolPolicy: "warm", scaleInAfterMs: 60_000 },
      intervalMs: 100,
      log: logs.logger,
      metrics: new ServiceMetrics(),
    });
    const present = async () => (await reports.read(["i-a", "i-b"])).map((report) => report.instanceId);
    // The deletions run beside the ticks, not in them: tick as the loop does until the reports are as expected.
    const tickUntil = (expected: string[]) =>
      waitFor(`reports of ${expected.join(", ") || "none"} left`, async () => (await controller.step(), JSON.stringify(await present()) === JSON.stringify(expected) ? true : undefined), 2_000);
    await tickUntil(["i-a", "i-b"]);
    states.set("i-a", "stopped");
    await tickUntil(["i-b"]);
    states.delete("i-b");
    await tickUntil([]);
    for (let tick = 0; tick < 5; tick++) await controller.step();
    await controller.stop();
    expect(removes).toBe(2);
    expect(logs.lines.filter((line) => line.event === "job_reports_removed").map((line) => line.removed)).toEqual([["i-a"], ["i-b"]]);
  });

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
      reports: new FixedReports(),
      scaling: { maxInstances: 15, slotsPerInstance: 1, poolPolicy: "warm", scaleInAfterMs: 1000 },
      intervalMs: 100,
      log: logs.logger,
      metrics: new ServiceMetrics(),
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

  test("a job queued while the fleet is idle is looked at at once, not at the next tick; later jobs add no look", async () => {
    const queue = new MemoryQueue("requests", { visibilityTimeoutSeconds: 30, maxReceives: 3 });
    const fleet = new LocalFleet(async () => ({ stop: async () => {} }));
    let looks = 0;
    const counted: Fleet = { list: () => (looks++, fleet.list()), launch: (count) => fleet.launch(count), start: (ids) => fleet.start(ids), stop: (ids) => fleet.stop(ids), terminate: (ids) => fleet.terminate(ids) };
    const controller = new Controller({
      queue,
      fleet: counted,
      reports: new FixedReports(),
      scaling: { maxInstances: 15, slotsPerInstance: 1, poolPolicy: "warm", scaleInAfterMs: 60_000 },
      // No tick comes during the test: only jobQueued can make the controller look.
      intervalMs: 600_000,
      log: captureLogs().logger,
      metrics: new ServiceMetrics(),
    });
    controller.start();
    try {
      await waitFor("the first look", () => (looks === 1 ? true : undefined), 2_000);
      await queue.send("job 1");
      controller.jobQueued();
      await waitFor("an instance started for the job", async () => ((await fleet.list()).length === 1 ? true : undefined), 2_000);
      expect(looks).toBe(2);
      // The fleet is no longer idle: more jobs wait for the ticks.
      for (let i = 2; i <= 5; i++) {
        await queue.send(`job ${i}`);
        controller.jobQueued();
      }
      await Bun.sleep(50);
      expect(looks).toBe(2);
    } finally {
      await controller.stop();
    }
  });

  test("an eventually consistent fleet listing does not make it launch twice or pass the limit", async () => {
    const fleet = new LaggingFleet();
    const depth: QueueDepth = { visible: 1000, inFlight: 0 };
    let clock = 0;
    const logs = captureLogs();
    const controller = new Controller({
      queue: { depth: async () => depth } as Pick<JobQueue, "depth"> as JobQueue,
      fleet,
      reports: new FixedReports(),
      scaling: { maxInstances: 15, slotsPerInstance: 1, poolPolicy: "cold", scaleInAfterMs: 1000 },
      intervalMs: 100,
      log: logs.logger,
      metrics: new ServiceMetrics(),
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

/** A controller over a queue of fixed depth, stepped by the test on its own clock. */
function controllerOf(options: {
  depth: QueueDepth;
  fleet: Fleet;
  reports?: JobReports;
  poolPolicy: "warm" | "cold";
  now: () => number;
  logger?: ReturnType<typeof captureLogs>["logger"];
  noProgressAfterMs?: number;
  metrics?: ServiceMetrics;
}) {
  return new Controller({
    queue: { depth: async () => options.depth } as Pick<JobQueue, "depth"> as JobQueue,
    fleet: options.fleet,
    reports: options.reports ?? new FixedReports(),
    scaling: { maxInstances: 15, slotsPerInstance: 1, poolPolicy: options.poolPolicy, scaleInAfterMs: 1000 },
    intervalMs: 250,
    noProgressAfterMs: options.noProgressAfterMs,
    log: options.logger ?? captureLogs().logger,
    metrics: options.metrics ?? new ServiceMetrics(),
    now: options.now,
  });
}

/** facefleet_instances_replaced_total as [reason, count] pairs. */
async function replacedCounts(metrics: ServiceMetrics): Promise<[string | number | undefined, number][]> {
  const counter = await metrics.registry.getSingleMetric("facefleet_instances_replaced_total")?.get();
  return (counter?.values ?? []).map((sample) => [sample.labels.reason, sample.value]);
}

describe("controller and EC2's capacity", () => {
  test("a scale-out cut short caps the fleet at what came, backs off (5 s, then 10 s), logs it and says so in health, then asks again", async () => {
    const fleet = new QuotaFleet(10);
    let clock = 0;
    const logs = captureLogs();
    const controller = controllerOf({ depth: { visible: 1000, inFlight: 0 }, fleet, poolPolicy: "cold", now: () => clock, logger: logs.logger });
    expect(controller.health()).toMatchObject({ capacity: "unlimited" });
    for (; clock < 4_999; clock += 250) await controller.step();
    expect(fleet.launchCalls).toEqual([15]);
    expect(fleet.active()).toBe(10);
    expect(controller.health()).toMatchObject({ capacity: { limitedTo: 10, reason: "10 of 15 instance(s) came", shortfalls: 1 } });
    expect(logs.lines.filter((line) => line.event === "capacity_cap")).toMatchObject([{ limitedTo: 10, retryInMs: 5000, asked: 15, got: 10 }]);

    clock = 5_000;
    await controller.step();
    expect(fleet.launchCalls).toEqual([15, 5]);
    expect(controller.health()).toMatchObject({ capacity: { limitedTo: 10, reason: "VcpuLimitExceeded", shortfalls: 2, retryInMs: 10_000 } });
    for (clock += 250; clock < 15_000; clock += 250) await controller.step();
    expect(fleet.launchCalls).toEqual([15, 5]);

    fleet.quota = 15;
    await controller.step();
    expect(fleet.launchCalls).toEqual([15, 5, 5]);
    expect(fleet.active()).toBe(15);
    expect(controller.health()).toMatchObject({ capacity: "unlimited" });
    expect(logs.lines.some((line) => line.event === "capacity_cap_lifted")).toBe(true);
  });

  test("a warm pool's start refused for capacity caps it the same way", async () => {
    const fleet = new QuotaFleet(0);
    await fleet.launchStopped(3);
    let clock = 0;
    const controller = controllerOf({ depth: { visible: 3, inFlight: 0 }, fleet, poolPolicy: "warm", now: () => clock });
    for (; clock < 4_000; clock += 250) await controller.step();
    expect(fleet.startCalls).toBe(1);
    expect(controller.health()).toMatchObject({ capacity: { limitedTo: 0, reason: "InsufficientInstanceCapacity" } });
  });
});

describe("instances that stop again or terminate as they boot", () => {
  test("a warm pool whose starts stop again with Client.InternalError (a KMS key the role may not use) is a capacity refusal: named in health, backed off, not retried every tick", async () => {
    const starts: number[] = [];
    let clock = 0;
    const states = new Map<string, AppInstance>(["i-a", "i-b"].map((id) => [id, { id, state: "stopped" }]));
    const fleet: Fleet = {
      list: async () => [...states.values()],
      launch: async () => [],
      // EC2 takes the start; the instance goes pending, then stopped, with the reason.
      start: async (ids) => {
        starts.push(clock);
        for (const id of ids) states.set(id, { id, state: "stopped", stateReason: "Client.InternalError" });
        return ids;
      },
      stop: async () => {},
      terminate: async () => {},
    };
    const logs = captureLogs();
    const controller = controllerOf({ depth: { visible: 2, inFlight: 0 }, fleet, poolPolicy: "warm", now: () => clock, logger: logs.logger });
    for (; clock < 120_000; clock += 250) await controller.step();
    // 0, then after 5, 10, 20 and 40 s of backoff: five rounds in two minutes, not one a tick.
    expect(starts.length).toBe(5);
    expect(controller.health()).toMatchObject({ capacity: { limitedTo: 0, shortfalls: 5 } });
    expect(JSON.stringify(controller.health())).toContain("kms:CreateGrant");
    expect(logs.lines.filter((line) => line.event === "capacity_cap").length).toBeGreaterThanOrEqual(5);

    // The role gets its grant: the next round's instances run, and the cap is lifted.
    fleet.start = async (ids) => {
      starts.push(clock);
      for (const id of ids) states.set(id, { id, state: "running" });
      return ids;
    };
    for (const end = clock + 90_000; clock < end; clock += 250) await controller.step();
    expect(starts.length).toBe(6);
    expect(controller.health()).toMatchObject({ capacity: "unlimited" });
  });

  test("a cold pool whose launches terminate at once with Client.InternalError (the same KMS key) is backed off the same way: no launch storm", async () => {
    const launches: number[] = [];
    let clock = 0;
    let serial = 0;
    const states = new Map<string, AppInstance>();
    const fleet: Fleet = {
      // A terminated instance is listed no more.
      list: async () => {
        const listed = [...states.values()];
        for (const instance of listed) if (instance.state === "shutting-down") states.delete(instance.id);
        return listed;
      },
      // EC2 takes the launch; the instance goes pending, then shutting-down and terminated, with the reason.
      launch: async (count) => {
        launches.push(clock);
        const ids = Array.from({ length: count }, () => `i-${++serial}`);
        for (const id of ids) states.set(id, { id, state: "shutting-down", stateReason: "Client.InternalError" });
        return ids;
      },
      start: async () => [],
      stop: async () => {},
      terminate: async () => {},
    };
    const logs = captureLogs();
    const controller = controllerOf({ depth: { visible: 2, inFlight: 0 }, fleet, poolPolicy: "cold", now: () => clock, logger: logs.logger });
    for (; clock < 120_000; clock += 250) await controller.step();
    // 0, then after 5, 10, 20 and 40 s of backoff: five rounds of two in two minutes, not one a tick.
    expect(launches.length).toBe(5);
    expect(serial).toBe(10);
    expect(controller.health()).toMatchObject({ capacity: { limitedTo: 0, shortfalls: 5 } });
    const reason = (controller.health().capacity as { reason: string }).reason;
    expect(reason).toStartWith("launched instances terminate as they boot (Client.InternalError)");
    expect(reason).toContain("kms:CreateGrant");
    expect(logs.lines.filter((line) => line.event === "capacity_cap").length).toBeGreaterThanOrEqual(5);

    // The role gets its grant: the next round's instances run, and the cap is lifted.
    fleet.launch = async (count) => {
      launches.push(clock);
      const ids = Array.from({ length: count }, () => `i-${++serial}`);
      for (const id of ids) states.set(id, { id, state: "running" });
      return ids;
    };
    for (const end = clock + 90_000; clock < end; clock += 250) await controller.step();
    expect(launches.length).toBe(6);
    expect([...states.values()].filter((instance) => instance.state === "running")).toHaveLength(2);
    expect(controller.health()).toMatchObject({ capacity: "unlimited" });
  });

  test("a launch listed once, then gone before a listing showed it going (the fleet lists no terminated instance), is a failed boot too; one not listed yet is not", async () => {
    const launches: number[] = [];
    let clock = 0;
    let serial = 0;
    /** How many more listings each instance shows in: missing from the first (EC2's lag), in the second, then gone. */
    const listings = new Map<string, number>();
    const fleet: Fleet = {
      list: async () => {
        const listed: AppInstance[] = [];
        for (const [id, left] of listings) {
          if (left === 2) listings.set(id, 1);
          else if (left === 1) (listed.push({ id, state: "pending" }), listings.delete(id));
        }
        return listed;
      },
      launch: async (count) => {
        launches.push(clock);
        const ids = Array.from({ length: count }, () => `i-${++serial}`);
        for (const id of ids) listings.set(id, 2);
        return ids;
      },
      start: async () => [],
      stop: async () => {},
      terminate: async () => {},
    };
    const controller = controllerOf({ depth: { visible: 2, inFlight: 0 }, fleet, poolPolicy: "cold", now: () => clock });
    for (; clock < 60_000; clock += 250) await controller.step();
    // 0, then after 5, 10 and 20 s of backoff (each round seen failing a tick or two after its launch).
    expect(launches.length).toBe(4);
    expect(controller.health()).toMatchObject({ capacity: { limitedTo: 0, shortfalls: 4 } });
    expect((controller.health().capacity as { reason: string }).reason).toContain("reason unknown");
  });

  test("instances this controller terminates within their first moments (a cold pool's scale-in) are no failed boots", async () => {
    let clock = 0;
    let serial = 0;
    const depth = { visible: 2, inFlight: 0 };
    const states = new Map<string, AppInstance>();
    const fleet: Fleet = {
      list: async () => [...states.values()],
      launch: async (count) => {
        const ids = Array.from({ length: count }, () => `i-${++serial}`);
        for (const id of ids) states.set(id, { id, state: "running" });
        return ids;
      },
      start: async () => [],
      stop: async () => {},
      // Gone before the next listing.
      terminate: async (ids) => void ids.forEach((id) => states.delete(id)),
    };
    const logs = captureLogs();
    const controller = controllerOf({ depth, fleet, poolPolicy: "cold", now: () => clock, logger: logs.logger });
    for (; clock < 2_000; clock += 250) await controller.step();
    expect(states.size).toBe(2);
    depth.visible = 0;
    for (; clock < 10_000 && states.size > 0; clock += 250) await controller.step();
    expect(states.size).toBe(0);
    for (const end = clock + 5_000; clock < end; clock += 250) await controller.step();
    expect(logs.lines.filter((line) => line.event === "capacity_cap")).toEqual([]);
    expect(controller.health()).toMatchObject({ capacity: "unlimited" });
  });
});

describe("controller scale-in", () => {
  const running = (...ids: string[]) => ({ list: async () => ids.map((id) => ({ id, state: "running" as const })), stop: async () => {} }) as Pick<Fleet, "list" | "stop"> as Fleet;

  test("an empty queue is not enough: an instance that reports a job keeps the fleet until its report says none", async () => {
    let clock = 100_000;
    const reports = new FixedReports([{ instanceId: "i-a", jobs: 1, at: clock }]);
    const controller = controllerOf({ depth: { visible: 0, inFlight: 0 }, fleet: running("i-a", "i-b"), reports, poolPolicy: "warm", now: () => clock });
    for (let i = 0; i < 20; i++, clock += 250) expect((await controller.step()).stop).toEqual([]);
    expect(reports.reads).toEqual(Array(20).fill(["i-a", "i-b"]));
    reports.reports = [{ instanceId: "i-a", jobs: 0, at: clock }];
    const stops: string[][] = [];
    for (let i = 0; i < 3; i++, clock += 500) stops.push((await controller.step()).stop);
    expect(stops).toEqual([[], [], ["i-a", "i-b"]]);
  });

  test("the report of an instance gone silent expires, and no longer holds the fleet", async () => {
    let clock = 100_000;
    const controller = controllerOf({
      depth: { visible: 0, inFlight: 0 },
      fleet: running("i-a"),
      reports: new FixedReports([{ instanceId: "i-a", jobs: 1, at: clock }]),
      poolPolicy: "warm",
      now: () => clock,
    });
    let stoppedAt: number | undefined;
    for (; clock < 130_000 && stoppedAt === undefined; clock += 250) if ((await controller.step()).stop.length > 0) stoppedAt = clock;
    expect(stoppedAt).toBe(100_000 + JOB_REPORT_EXPIRY_MS + 1000);
  });
});

describe("controller and unhealthy instances", () => {
  const busy: QueueDepth = { visible: 5, inFlight: 1 };

  test("an instance that reports it cannot run jobs is stopped (warm) or terminated (cold) while the others keep working; the log and health say so", async () => {
    for (const poolPolicy of ["warm", "cold"] as const) {
      const clock = 100_000;
      const logs = captureLogs();
      const fleet = new RecordingFleet("i-a", "i-b");
      const reports = new FixedReports([{ instanceId: "i-a", jobs: 0, at: clock, healthy: false, completed: 0 }, { instanceId: "i-b", jobs: 1, at: clock, healthy: true, completed: 3 }]);
      const metrics = new ServiceMetrics();
      const controller = controllerOf({ depth: busy, fleet, reports, poolPolicy, now: () => clock, logger: logs.logger, metrics });
      const decision = await controller.step();
      expect(poolPolicy === "warm" ? [decision.stop, decision.terminate] : [decision.terminate, decision.stop]).toEqual([["i-a"], []]);
      expect(poolPolicy === "warm" ? fleet.stopped : fleet.terminated).toEqual(["i-a"]);
      expect(logs.lines.find((line) => line.event === "replace_unhealthy")).toMatchObject({ replace: ["i-a"] });
      expect(controller.health()).toMatchObject({ replaced: { sick: 1, stalledFleets: 0 } });
      expect(await replacedCounts(metrics)).toEqual([["unhealthy", 1]]);
    }
  });

  test("a warm instance sick again after it was stopped for it and started afresh is terminated: its fault travels with it", async () => {
    let clock = 100_000;
    const logs = captureLogs();
    const fleet = new RecordingFleet("i-a", "i-b");
    const sick = (at: number): JobReport => ({ instanceId: "i-a", jobs: 0, at, healthy: false, completed: 0 });
    const reports = new FixedReports([sick(clock), { instanceId: "i-b", jobs: 1, at: clock, healthy: true, completed: 3 }]);
    const controller = controllerOf({ depth: busy, fleet, reports, poolPolicy: "warm", now: () => clock, logger: logs.logger });
    expect((await controller.step()).stop).toEqual(["i-a"]);
    fleet.states.set("i-a", "stopped");
    for (clock += 250; !fleet.started.includes("i-a") && clock < 130_000; clock += 250) await controller.step();
    expect(fleet.started).toEqual(["i-a"]);
    reports.reports[0] = sick(clock + 1_000);
    let decision = await controller.step();
    for (clock += 250; decision.terminate.length === 0 && clock < 160_000; clock += 250) {
      reports.reports[0] = sick(clock);
      decision = await controller.step();
    }
    expect([decision.terminate, decision.stop]).toEqual([["i-a"], []]);
    expect(fleet.stopped).toEqual(["i-a"]);
    expect(fleet.terminated).toEqual(["i-a"]);
    expect(controller.health()).toMatchObject({ replaced: { sick: 2 } });
  });

  test("a warm instance that answered jobs again after its restart has recovered: its next fault stops it again", async () => {
    let clock = 100_000;
    const fleet = new RecordingFleet("i-a", "i-b");
    const report = (at: number, healthy: boolean, completed: number): JobReport => ({ instanceId: "i-a", jobs: 0, at, healthy, completed });
    const reports = new FixedReports([report(clock, false, 0), { instanceId: "i-b", jobs: 1, at: clock, healthy: true, completed: 3 }]);
    const controller = controllerOf({ depth: busy, fleet, reports, poolPolicy: "warm", now: () => clock });
    expect((await controller.step()).stop).toEqual(["i-a"]);
    fleet.states.set("i-a", "stopped");
    for (clock += 250; !fleet.started.includes("i-a") && clock < 130_000; clock += 250) await controller.step();
    reports.reports[0] = report(clock + 1_000, true, 2);
    clock += 1_000;
    await controller.step();
    let decision = await controller.step();
    for (clock += 250; decision.stop.length === 0 && decision.terminate.length === 0 && clock < 160_000; clock += 250) {
      reports.reports[0] = report(clock, false, 2);
      decision = await controller.step();
    }
    expect([decision.stop, decision.terminate]).toEqual([["i-a"], []]);
    expect(fleet.terminated).toEqual([]);
  });

  test("a running instance whose service never reports (its unit fails at every start, as systemd restarts it on EC2) is replaced once silentAfterMs has passed", async () => {
    let clock = 100_000;
    const logs = captureLogs();
    const fleet = new RecordingFleet("i-a", "i-b");
    const reports = new FixedReports([{ instanceId: "i-b", jobs: 1, at: clock, healthy: true, completed: 3 }]);
    const controller = controllerOf({ depth: busy, fleet, reports, poolPolicy: "warm", now: () => clock, logger: logs.logger });
    let decision = await controller.step();
    for (; decision.stop.length === 0 && clock < 100_000 + 2 * SILENT_AFTER_MS; clock += 1_000) {
      reports.reports[0] = { instanceId: "i-b", jobs: 1, at: clock, healthy: true, completed: 3 + clock };
      decision = await controller.step();
    }
    expect(decision.stop).toEqual(["i-a"]);
    expect(clock - 1_000 - 100_000).toBe(SILENT_AFTER_MS);
    expect(logs.lines.find((line) => line.event === "replace_unhealthy")).toMatchObject({ replace: ["i-a"] });
  });

  test("a report from before the controller started the instance again is its previous life's: not a reason to stop it", async () => {
    let clock = 100_000;
    const fleet = new RecordingFleet();
    fleet.states.set("i-a", "stopped");
    const reports = new FixedReports([{ instanceId: "i-a", jobs: 0, at: clock - 1_000, healthy: false }]);
    const controller = controllerOf({ depth: busy, fleet, reports, poolPolicy: "warm", now: () => clock });
    expect((await controller.step()).start).toEqual(["i-a"]);
    for (clock += 1_000; clock < 105_000; clock += 250) expect((await controller.step()).stop).toEqual([]);
  });

  test("no job answered for noProgressAfterMs while jobs wait: the whole fleet is replaced once per period, logged, and health says how long", async () => {
    let clock = 0;
    const logs = captureLogs();
    const fleet = new RecordingFleet("i-a", "i-b");
    const reports = new FixedReports([{ instanceId: "i-a", jobs: 1, at: 0, completed: 4 }, { instanceId: "i-b", jobs: 1, at: 0, completed: 2 }]);
    const metrics = new ServiceMetrics();
    const controller = controllerOf({ depth: busy, fleet, reports, poolPolicy: "warm", now: () => clock, logger: logs.logger, noProgressAfterMs: 10_000, metrics });
    const stops: number[] = [];
    for (; clock <= 25_000; clock += 250) {
      for (const report of reports.reports) report.at = clock;
      if ((await controller.step()).stop.length > 0) stops.push(clock);
      if (clock === 5_000) expect(controller.health()).toMatchObject({ progress: { noJobAnsweredForMs: 5_000 } });
    }
    expect(stops).toEqual([10_000, 20_000]);
    expect(fleet.stopped).toEqual(["i-a", "i-b", "i-a", "i-b"]);
    expect(logs.lines.filter((line) => line.event === "no_progress")).toHaveLength(2);
    expect(controller.health()).toMatchObject({ replaced: { sick: 0, stalledFleets: 2 } });
    expect(await replacedCounts(metrics)).toEqual([["no_progress", 4]]);
  });

  test("a fleet that answers jobs is never replaced, however long the backlog lasts", async () => {
    let clock = 0;
    const fleet = new RecordingFleet("i-a");
    const reports = new FixedReports([{ instanceId: "i-a", jobs: 1, at: 0, completed: 0 }]);
    const controller = controllerOf({ depth: busy, fleet, reports, poolPolicy: "warm", now: () => clock, noProgressAfterMs: 10_000 });
    for (; clock <= 60_000; clock += 250) {
      reports.reports[0]!.at = clock;
      reports.reports[0]!.completed = Math.floor(clock / 5_000);
      expect((await controller.step()).stop).toEqual([]);
    }
    expect(controller.health()).toMatchObject({ progress: "ok" });
  });
});

/** Instances as set, their stops and terminations remembered (and applied). */
class RecordingFleet implements Fleet {
  readonly states = new Map<string, InstanceState>();
  stopped: string[] = [];
  terminated: string[] = [];
  constructor(...running: string[]) {
    for (const id of running) this.states.set(id, "running");
  }
  async list(): Promise<AppInstance[]> {
    return [...this.states].filter(([, state]) => state !== "terminated").map(([id, state]) => ({ id, state }));
  }
  async launch(): Promise<string[]> {
    return [];
  }
  started: string[] = [];
  async start(ids: string[]): Promise<string[]> {
    for (const id of ids) this.states.set(id, "running");
    this.started.push(...ids);
    return ids;
  }
  async stop(ids: string[]): Promise<void> {
    this.stopped.push(...ids);
    // Stopped and at once started again by a test that wants the same fleet back.
  }
  async terminate(ids: string[]): Promise<void> {
    this.terminated.push(...ids);
  }
}

/** Reports a test sets; every read is remembered. */
class FixedReports implements JobReports {
  reads: string[][] = [];
  constructor(public reports: JobReport[] = []) {}

  async write(): Promise<void> {}
  async remove(): Promise<void> {}
  async read(instanceIds: string[]): Promise<JobReport[]> {
    this.reads.push(instanceIds);
    return this.reports.filter((report) => instanceIds.includes(report.instanceId));
  }
}

/** An in-memory fleet that gives instances up to a quota of active ones, as EC2's vCPU quota does. */
class QuotaFleet implements Fleet {
  launchCalls: number[] = [];
  startCalls = 0;
  private readonly states = new Map<string, InstanceState>();
  constructor(public quota: number) {}

  active(): number {
    return [...this.states.values()].filter((state) => state === "pending" || state === "running").length;
  }

  async launchStopped(count: number): Promise<void> {
    for (let i = 0; i < count; i++) this.states.set(`i-${this.states.size}`, "stopped");
  }

  async list(): Promise<AppInstance[]> {
    return [...this.states].map(([id, state]) => ({ id, state }));
  }

  async launch(count: number): Promise<string[]> {
    this.launchCalls.push(count);
    const room = Math.min(count, this.quota - this.active());
    if (room <= 0) throw new CapacityError("VcpuLimitExceeded", "over the vCPU quota");
    const ids = Array.from({ length: room }, () => `i-${this.states.size}`).map((id, i) => `${id}-${i}`);
    for (const id of ids) this.states.set(id, "running");
    return ids;
  }

  async start(ids: string[]): Promise<string[]> {
    this.startCalls++;
    if (this.active() + ids.length > this.quota) throw new CapacityError("InsufficientInstanceCapacity", "no machines");
    for (const id of ids) this.states.set(id, "running");
    return ids;
  }

  async stop(): Promise<void> {}
  async terminate(): Promise<void> {}
}

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
