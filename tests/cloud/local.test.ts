import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileBucket } from "../../roles/cloud/local/file-bucket.ts";
import { MemoryQueue } from "../../roles/cloud/local/memory-queue.ts";
import { LocalFleet } from "../../roles/cloud/local/process-fleet.ts";
import { bucketContract } from "./bucket.contract.ts";
import { queueContract } from "./queue.contract.ts";

describe("local queue", () => {
  queueContract(async () => {
    const deadLetter = new MemoryQueue("dlq", { visibilityTimeoutSeconds: 1, maxReceives: 2 });
    return { queue: new MemoryQueue("requests", { visibilityTimeoutSeconds: 1, maxReceives: 2, deadLetter }), deadLetter };
  });
});

describe("local bucket", () => {
  let dataDir = "";
  bucketContract(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "facefleet-bucket-"));
    return new FileBucket(dataDir, "in-bucket");
  });

  test("hostile keys are just keys", async () => {
    const bucket = new FileBucket(mkdtempSync(join(tmpdir(), "facefleet-bucket-")), "b");
    for (const key of ["../../etc/passwd", "..", "/absolute", "a/../../b", "%2e%2e"]) {
      await bucket.put(key, key);
      expect(new TextDecoder().decode(await bucket.get(key))).toBe(key);
    }
    expect(await bucket.count()).toBe(5);
  });

  test("nothing is written outside the bucket's folder", async () => {
    const root = mkdtempSync(join(tmpdir(), "facefleet-bucket-"));
    const bucket = new FileBucket(join(root, "data"), "b");
    await bucket.put("../../escaped", "x");
    expect(existsSync(join(root, "escaped"))).toBe(false);
    expect(readdirSync(root)).toEqual(["data"]);
  });
});

describe("local fleet", () => {
  test("EC2 life cycle: launch -> running, stop -> stopped, start -> running, terminate -> gone", async () => {
    const machines = new Map<string, boolean>();
    const fleet = new LocalFleet(async (id) => {
      machines.set(id, true);
      return { stop: async () => void machines.set(id, false) };
    });
    const [id] = await fleet.launch(1);
    expect((await fleet.list())[0]?.state).toBe("pending");
    await fleet.settled();
    expect(await fleet.list()).toEqual([{ id: id!, state: "running" }]);
    expect(machines.get(id!)).toBe(true);
    await fleet.stop([id!]);
    await fleet.settled();
    expect(await fleet.list()).toEqual([{ id: id!, state: "stopped" }]);
    expect(machines.get(id!)).toBe(false);
    await fleet.start([id!]);
    await fleet.settled();
    expect(machines.get(id!)).toBe(true);
    await fleet.terminate([id!]);
    await fleet.settled();
    expect(await fleet.list()).toEqual([]);
    expect(machines.get(id!)).toBe(false);
  });
});
