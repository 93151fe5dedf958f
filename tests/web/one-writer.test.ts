// One web process per deployment (the web lease, over S3 in the emulated region) and one per port.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { CreateQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { awsCloud, localCloud } from "../../roles/cloud/index.ts";
import { ConfigError, loadConfig, resourceNames, type Config } from "../../roles/config.ts";
import type { RoleContext } from "../../roles/context.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";
import { imageInspector } from "../../roles/start.ts";
import { MemoryQueue } from "../../roles/cloud/local/memory-queue.ts";
import { startWebRole } from "../../roles/web/index.ts";
import { ReplyPoller } from "../../roles/web/reply-poller.ts";
import { freshConfig, startAwsTestRegion, type AwsTestRegion } from "../cloud/clouds.ts";
import { captureLogs } from "./support.ts";

setDefaultTimeout(60_000);

const inspect = imageInspector(40_000_000);

describe("a port in use", () => {
  test("the web role refuses it with a message naming the port, even when the other listener shares ports (SO_REUSEPORT)", async () => {
    const other = Bun.serve({ hostname: "127.0.0.1", port: 0, reusePort: true, fetch: () => new Response("the other process") });
    try {
      const config = loadConfig({}, { host: "127.0.0.1", port: other.port, dataDir: mkdtempSync(join(tmpdir(), "facefleet-port-")), apiToken: "t" });
      const context: RoleContext = { config, names: resourceNames(config), cloud: localCloud(config, async () => ({ stop: async () => {} })), log: captureLogs().logger, metrics: new ServiceMetrics() };
      const started = startWebRole(context, { inspect, tokenSource: "data-dir" });
      await expect(started).rejects.toBeInstanceOf(ConfigError);
      await expect(started).rejects.toThrow(`port ${other.port} on 127.0.0.1 is in use by another process`);
    } finally {
      other.stop(true);
    }
  });

  test("`bun index.ts` on a port in use exits with code 2 and says so", async () => {
    const other = Bun.serve({ hostname: "127.0.0.1", port: 0, reusePort: true, fetch: () => new Response("the other process") });
    try {
      const child = Bun.spawn(["bun", "index.ts", "--role", "all"], {
        cwd: resolve(import.meta.dir, "../.."),
        env: { ...process.env, FACEFLEET_HOST: "127.0.0.1", FACEFLEET_PORT: String(other.port), FACEFLEET_DATA_DIR: mkdtempSync(join(tmpdir(), "facefleet-port-")) },
        stdout: "ignore",
        stderr: "pipe",
      });
      try {
        expect(await Promise.race([child.exited, Bun.sleep(30_000).then(() => "still running")])).toBe(2);
        expect(await new Response(child.stderr).text()).toContain(`port ${other.port} on 127.0.0.1 is in use by another process`);
      } finally {
        child.kill();
      }
    } finally {
      other.stop(true);
    }
  });
});

describe("a web process that lost its lease", () => {
  test("takes no replies until it holds the lease again", async () => {
    const queue = new MemoryQueue("replies", { visibilityTimeoutSeconds: 30, maxReceives: 3 });
    let holdsLease = false;
    const logs = captureLogs();
    const poller = new ReplyPoller(queue, logs.logger, () => holdsLease);
    poller.start();
    try {
      const reply = poller.waitFor("job-1", "recognize", 10_000);
      await queue.send(JSON.stringify({ ok: true, jobId: "job-1", person: "Paul", faces: 1 }));
      await Bun.sleep(700);
      expect(await queue.depth()).toEqual({ visible: 1, inFlight: 0 });
      expect(logs.lines.some((line) => line.event === "reply_polling_paused")).toBe(true);
      holdsLease = true;
      expect(await reply).toMatchObject({ ok: true, person: "Paul" });
    } finally {
      await poller.stop();
    }
  });
});

describe("two web processes on one deployment", () => {
  let aws: AwsTestRegion;
  beforeAll(async () => {
    aws = await startAwsTestRegion();
  });
  afterAll(() => aws?.stop());

  async function deployment(): Promise<(log?: ReturnType<typeof captureLogs>) => RoleContext> {
    const config: Config = { ...freshConfig(), host: "127.0.0.1", port: 0, apiToken: "t" };
    const names = resourceNames(config);
    const s3 = new S3Client({ forcePathStyle: true });
    for (const bucket of [names.inBucket, names.outBucket, names.reportsBucket]) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const sqs = new SQSClient({});
    for (const queue of [names.reqQueue, names.respQueue]) await sqs.send(new CreateQueueCommand({ QueueName: queue }));
    return (log = captureLogs()) => ({ config, names, cloud: awsCloud(config), log: log.logger, metrics: new ServiceMetrics() });
  }

  test("the second refuses to start, naming the first; once the first stops, the next starts at once", async () => {
    const contextOf = await deployment();
    const first = await startWebRole(contextOf(), { inspect, tokenSource: "input-bucket", exclusive: true });
    try {
      const began = performance.now();
      const second = startWebRole(contextOf(), { inspect, tokenSource: "input-bucket", exclusive: true });
      await expect(second).rejects.toBeInstanceOf(ConfigError);
      await expect(second).rejects.toThrow(/another web process of this deployment is running \(\S+ pid \d+ \(\w+\)\): it consumes the response queue/);
      // Refused once it saw the first renew its lease (every 5 s), not after the whole term.
      expect(performance.now() - began).toBeLessThan(12_000);
      expect((await fetch(`http://127.0.0.1:${first.port}/healthz`)).status).toBe(200);
    } finally {
      await first.stop();
    }
    const began = performance.now();
    const next = await startWebRole(contextOf(), { inspect, tokenSource: "input-bucket", exclusive: true });
    expect(performance.now() - began).toBeLessThan(2_000);
    await next.stop();
  });
});
