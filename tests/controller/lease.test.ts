// Two controllers of one deployment behind the controller lease (files; the lease itself is also tested on S3 in
// tests/cloud/lease.test.ts): one acts, and when it is cut off the other takes over, never both at once.
import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Lease } from "../../roles/cloud/lease.ts";
import { FileBucket } from "../../roles/cloud/local/file-bucket.ts";
import { MemoryQueue } from "../../roles/cloud/local/memory-queue.ts";
import { LocalFleet } from "../../roles/cloud/local/process-fleet.ts";
import type { Bucket, Fleet, JobReports } from "../../roles/cloud/types.ts";
import { Controller } from "../../roles/controller/controller.ts";
import { LEASE_KEYS } from "../../roles/deployment.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";
import { waitFor } from "../support/waiting.ts";
import { captureLogs } from "../service/support.ts";

const TERM_MS = 600;
const noReports: JobReports = { write: async () => {}, read: async () => [], remove: async () => {} };

/** A bucket this controller can be cut off from: every call fails while `cut`. */
function severable(bucket: Bucket): { bucket: Bucket; cut(): void } {
  let cut = false;
  const guarded =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      if (cut) throw new Error("network unreachable");
      return call(...args);
    };
  const methods = ["put", "get", "read", "putIf", "version", "metadata", "delete", "count"] as const;
  const wrapped = Object.fromEntries(methods.map((method) => [method, guarded((bucket[method] as (...args: unknown[]) => Promise<unknown>).bind(bucket))]));
  return { bucket: { name: bucket.name, ...wrapped } as Bucket, cut: () => (cut = true) };
}

describe("controller lease", () => {
  test("two controllers started together launch 15 instances, not 30; cut off, the holder stops and the other takes over a term later", async () => {
    const reports = new FileBucket(mkdtempSync(join(tmpdir(), "facefleet-lease-")), "reports");
    const queue = new MemoryQueue("requests", { visibilityTimeoutSeconds: 30, maxReceives: 3 });
    for (let job = 0; job < 30; job++) await queue.send(`job ${job}`);
    const fleet = new LocalFleet(async () => ({ stop: async () => {} }));
    const controllers = ["first", "second"].map((name) => {
      const link = severable(reports);
      const lease = new Lease({ bucket: link.bucket, key: LEASE_KEYS.controller, holder: name, termMs: TERM_MS });
      const steps = { count: 0 };
      const counting: Fleet = { ...fleet, list: () => (steps.count++, fleet.list()), launch: (n) => fleet.launch(n), start: (ids) => fleet.start(ids), stop: (ids) => fleet.stop(ids), terminate: (ids) => fleet.terminate(ids) };
      const controller = new Controller({
        queue,
        fleet: counting,
        reports: noReports,
        scaling: { maxInstances: 15, slotsPerInstance: 1, poolPolicy: "warm", scaleInAfterMs: 1000 },
        intervalMs: 20,
        log: captureLogs().logger,
        metrics: new ServiceMetrics(),
        mayAct: () => lease.holds(),
      });
      return { name, lease, controller, steps, cut: link.cut };
    });
    let bothHeld = false;
    const watch = setInterval(() => (bothHeld ||= controllers.every((c) => c.lease.holds())), 5);
    try {
      for (const { lease, controller } of controllers) {
        lease.start();
        controller.start();
      }
      await waitFor("15 instances", async () => ((await fleet.list()).length === 15 || undefined), 5_000, 10);
      await Bun.sleep(300);
      expect(await fleet.list()).toHaveLength(15);
      const holder = controllers.find((c) => c.lease.holds())!;
      const standby = controllers.find((c) => c !== holder)!;
      expect(standby.lease.holds()).toBe(false);
      expect(standby.steps.count).toBe(0);

      const cutAt = performance.now();
      holder.cut();
      await waitFor("the standby to take the lease", () => standby.lease.holds() || undefined, 5_000, 5);
      // A term after the holder's last renewal, which came at most one renewal period before the cut.
      expect(performance.now() - cutAt).toBeGreaterThanOrEqual(TERM_MS - holder.lease.renewEveryMs);
      expect(holder.lease.holds()).toBe(false);
      const holderSteps = holder.steps.count;
      await waitFor("the new holder to act", () => standby.steps.count > 3 || undefined, 5_000, 10);
      expect(holder.steps.count).toBeLessThanOrEqual(holderSteps + 1);
      expect(bothHeld).toBe(false);
    } finally {
      clearInterval(watch);
      for (const { lease, controller } of controllers) {
        await controller.stop();
        await lease.stop();
      }
      await fleet.terminate((await fleet.list()).map((instance) => instance.id));
    }
  });
});
