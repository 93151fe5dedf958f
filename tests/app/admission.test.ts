// Jobs and the inference pool they share, as the embedded app instances share it: images stay in the input bucket
// until a worker can take them, a job that gives up while waiting is never read, and jobs of one image share its
// analysis. The pool runs the stand-in worker (the image's first byte is its width); buckets are temporary folders.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { ModelConfigSchema, type ModelConfig } from "../../model/config.ts";
import { InferencePool } from "../../model/pool.ts";
import { fixedThreshold } from "../../model/open-set.ts";
import { AnalysisCache } from "../../roles/app/analysis-cache.ts";
import { Consumer } from "../../roles/app/consumer.ts";
import { handleJob, type JobDependencies } from "../../roles/app/handle-job.ts";
import { FileBlobStore } from "../../roles/cloud/local/file-bucket.ts";
import { MemoryQueueService } from "../../roles/cloud/local/memory-queue.ts";
import type { Bucket } from "../../roles/cloud/types.ts";
import { GalleryReader } from "../../roles/gallery-store.ts";
import type { JobMessage } from "../../roles/messages.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";
import { captureLogs } from "../support/logs.ts";

const config: ModelConfig = Value.Default(ModelConfigSchema, {}) as ModelConfig;
const echoWorker = new URL("../model/support/echo-worker.ts", import.meta.url);

let pool: InferencePool;
beforeAll(async () => {
  pool = await InferencePool.create({ config, workers: 1, onnxDir: "unused", workerUrl: echoWorker });
});
afterAll(() => pool.close());

/** The input bucket, counting the images in memory: read (the read has returned) and not yet answered by the pool. */
function countingInput(inner: Bucket) {
  const counts = { reads: 0, held: 0, maxHeld: 0 };
  const bucket: Bucket = Object.create(inner);
  bucket.get = async (key) => {
    counts.reads++;
    const body = await inner.get(key);
    counts.held++;
    counts.maxHeld = Math.max(counts.maxHeld, counts.held);
    return body;
  };
  const analyzer = { analyze: (...args: Parameters<InferencePool["analyze"]>) => pool.analyze(...args).finally(() => counts.held--) };
  return { bucket, analyzer, counts };
}

const silent = captureLogs().logger;

async function setUp(cacheEntries: number) {
  const blobs = new FileBlobStore(mkdtempSync(join(tmpdir(), "facefleet-admission-")));
  const input = countingInput(blobs.bucket("in"));
  const deps: JobDependencies = {
    analyzer: input.analyzer,
    cache: new AnalysisCache(cacheEntries),
    gallery: new GalleryReader(blobs.bucket("gallery")),
    inBucket: input.bucket,
    outBucket: blobs.bucket("out"),
    galleryBucket: blobs.bucket("gallery"),
    threshold: fixedThreshold(0.5),
  };
  const job = async (index: number, sha256 = index.toString(16).padStart(64, "0")): Promise<JobMessage> => {
    await blobs.bucket("in").put(`${index}/a.jpg`, new Uint8Array([index, 1, 2, 3]));
    return { kind: "faces", jobId: `job-${index}`, replyTo: "replies", inputKey: `${index}/a.jpg`, name: `a${index}`, sha256, mode: "open", faces: { k: 0, maxFaces: 20, minScore: 0, embedding: false } };
  };
  return { deps, job, counts: input.counts };
}

describe("jobs sharing one inference pool", () => {
  test("four consumers of two slots each, one worker: every job answered, never more than two images in memory", async () => {
    const { deps, job, counts } = await setUp(0);
    const queues = new MemoryQueueService({ visibilityTimeoutSeconds: 30, maxReceives: 3, deadLetterQueue: "dlq" });
    const requests = queues.queue("requests");
    for (let index = 1; index <= 16; index++) await requests.send(JSON.stringify(await job(index)));
    const consumers = Array.from(
      { length: 4 },
      () =>
        new Consumer({
          requestQueue: requests,
          deadLetterQueue: queues.queue("dlq"),
          queues,
          slots: 2,
          visibilityTimeoutSeconds: 30,
          maxReceives: 3,
          jobDeadlineMs: 60_000,
          log: captureLogs().logger,
          metrics: new ServiceMetrics(),
          job: deps,
        }),
    );
    for (const consumer of consumers) consumer.start();
    const answered = new Map<string, unknown>();
    const replies = queues.queue("replies");
    for (let attempt = 0; attempt < 100 && answered.size < 16; attempt++) {
      for (const message of await replies.receive({ maxMessages: 10, waitSeconds: 1 })) {
        const reply = JSON.parse(message.body) as { jobId: string; ok: boolean; result?: { width: number } };
        answered.set(reply.jobId, reply.ok && reply.result?.width);
        await replies.delete(message.receiptHandle);
      }
    }
    await Promise.all(consumers.map((consumer) => consumer.stop()));
    expect([...answered.entries()].sort(([a], [b]) => a.localeCompare(b))).toEqual(
      Array.from({ length: 16 }, (_, i) => [`job-${i + 1}`, i + 1] as [string, number]).sort(([a], [b]) => a.localeCompare(b)),
    );
    expect(counts.reads).toBe(16);
    expect(counts.maxHeld).toBeLessThanOrEqual(2);
  }, 30_000);

  test("a job that gives up while it waits for the pool ends at once, and its image is never read", async () => {
    const { deps, job, counts } = await setUp(0);
    const ahead = [await job(1), await job(2), await job(3)].map((message) => handleJob(message, deps, silent));
    const gaveUp = new AbortController();
    const waiting = handleJob(await job(4), deps, silent, gaveUp.signal);
    await Bun.sleep(10);
    gaveUp.abort(new Error("past its deadline"));
    expect(((await waiting.catch((e: unknown) => e)) as Error).message).toBe("past its deadline");
    expect((await Promise.all(ahead)).every((reply) => reply.ok)).toBe(true);
    expect(counts.reads).toBe(3);
  });

  test("eight jobs of one image at once: one read, one analysis, eight answers", async () => {
    const { deps, job, counts } = await setUp(100);
    const sha256 = "b".repeat(64);
    const jobs = [];
    for (let index = 1; index <= 8; index++) jobs.push(await job(index, sha256));
    const replies = await Promise.all(jobs.map((message) => handleJob(message, deps, silent)));
    expect(replies.map((reply) => reply.ok && "result" in reply && "width" in reply.result && reply.result.width)).toEqual(Array(8).fill(1));
    expect(counts.reads).toBe(1);
  });
});
