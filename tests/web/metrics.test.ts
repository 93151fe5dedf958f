// /metrics scraped over real HTTP and parsed as Prometheus text; /stats; the latency window; what the app role's
// consumer and the controller record; the app instances' job counters carried in their job reports.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixedThreshold } from "../../model/open-set.ts";
import { AnalysisCache } from "../../roles/app/analysis-cache.ts";
import { Consumer } from "../../roles/app/consumer.ts";
import { startAppRole } from "../../roles/app/index.ts";
import { MemoryJobReports } from "../../roles/cloud/local/memory-reports.ts";
import { FileBlobStore } from "../../roles/cloud/local/file-bucket.ts";
import { MemoryQueueService } from "../../roles/cloud/local/memory-queue.ts";
import { LocalFleet } from "../../roles/cloud/local/process-fleet.ts";
import { Controller } from "../../roles/controller/controller.ts";
import { GalleryReader } from "../../roles/gallery-store.ts";
import type { Cloud } from "../../roles/cloud/types.ts";
import { appConfig, controllerConfig, resourceNames } from "../../roles/config.ts";
import { startControllerRole } from "../../roles/controller/index.ts";
import type { JobCounts, JobMessage, JobReport } from "../../roles/messages.ts";
import { JobTally, LATENCY_BUCKET_RATIO, LatencyWindow, ServiceMetrics, type LatencyPercentiles } from "../../roles/metrics.ts";
import { freshConfig, freshLocalCloud } from "../cloud/clouds.ts";
import { waitFor } from "../support/waiting.ts";
import { AUTH, captureLogs, faceReport, facesResult, multipart, startWebHarness, testImages, type WebHarness } from "./support.ts";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text exposition format, line by line: `name{label="value",…} number`; a line it cannot read fails the test. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not Prometheus text: ${line}`);
    const labels = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((label) => [label[1]!, label[2]!]));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((sample) => sample.name === name && Object.entries(labels).every(([key, wanted]) => sample.labels[key] === wanted))?.value;

let harness: WebHarness | undefined;
let server: { stop(): unknown } | undefined;
afterEach(async () => {
  server?.stop();
  await harness?.stop();
  harness = server = undefined;
});

async function listen(h: WebHarness): Promise<string> {
  h.app.listen({ hostname: "127.0.0.1", port: 0 });
  server = h.app;
  return `http://127.0.0.1:${h.app.server!.port}`;
}

/** The after-answer hooks run once the answer is sent: wait until the scrape shows `count` requests timed. */
async function scrapeAfter(url: string, timed: number): Promise<Sample[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const response = await fetch(`${url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    const samples = parseExposition(await response.text());
    const counted = samples.filter((sample) => sample.name === "facefleet_http_request_duration_seconds_count").reduce((sum, sample) => sum + sample.value, 0);
    if (counted >= timed) return samples;
    await Bun.sleep(20);
  }
  throw new Error(`fewer than ${timed} requests timed`);
}

describe("/metrics", () => {
  test("a real scrape: requests by route template and status (answers before routing under one label), the gallery, stage timings from replies, process memory; no token needed", async () => {
    const images = await testImages();
    harness = await startWebHarness({
      answer: (job) =>
        job.kind === "faces"
          ? { ok: true, jobId: job.jobId, result: facesResult([faceReport([{ subject: "Paul", similarity: 0.95 }])]) }
          : job.kind === "recognize"
            ? { ok: true, jobId: job.jobId, person: "Paul", faces: 1 }
            : { ok: true, jobId: job.jobId, faces: 1, embeddingKey: `embeddings/${job.jobId}.f32` },
    });
    const url = await listen(harness);
    expect((await fetch(`${url}/`, { method: "POST", body: multipart("inputFile", images.jpeg, "a.jpg") })).status).toBe(200);
    expect((await fetch(`${url}/v1/recognize`, { method: "POST", body: multipart("image", images.jpeg, "a.jpg"), headers: AUTH })).status).toBe(200);
    expect((await fetch(`${url}/v1/subjects/Paul%20Smith/faces`, { method: "POST", body: multipart("image", images.jpeg, "p.jpg"), headers: AUTH })).status).toBe(201);
    expect((await fetch(`${url}/v1/subjects/Someone/faces`, { method: "POST", body: multipart("image", images.jpeg, "p.jpg") })).status).toBe(401);
    expect((await fetch(`${url}/no/such/page`)).status).toBe(404);

    const samples = await scrapeAfter(url, 5);
    const count = "facefleet_http_request_duration_seconds_count";
    expect(value(samples, count, { method: "POST", route: "/", status: "200" })).toBe(1);
    expect(value(samples, count, { method: "POST", route: "/v1/recognize", status: "200" })).toBe(1);
    expect(value(samples, count, { method: "POST", route: "/v1/subjects/:name/faces", status: "201" })).toBe(1);
    expect(value(samples, count, { method: "POST", route: "/v1/subjects/:name/faces", status: "401" })).toBeUndefined();
    expect(value(samples, count, { method: "POST", route: "unrouted", status: "401" })).toBe(1);
    expect(value(samples, count, { method: "GET", route: "unrouted", status: "404" })).toBe(1);
    expect(samples.some((sample) => Object.values(sample.labels).some((label) => label.includes("Paul") || label.includes("/no/such")))).toBe(false);
    expect(value(samples, "facefleet_http_requests_in_flight")).toBe(1); // the scrape itself
    expect(value(samples, "facefleet_gallery_subjects")).toBe(1);
    expect(value(samples, "facefleet_gallery_faces")).toBe(1);
    expect(value(samples, "facefleet_inference_stage_duration_seconds_count", { stage: "detect" })).toBe(1);
    expect(value(samples, "facefleet_inference_stage_duration_seconds_sum", { stage: "embed" })).toBeCloseTo(0.004);
    expect(value(samples, "process_resident_memory_bytes")).toBeGreaterThan(0);
    // The page's percentiles count the POSTs only (four above), not the scrapes and the 404.
    const stats = (await (await fetch(`${url}/stats`)).json()) as { latencyMs: { count: number; p50: number; p99: number } };
    expect(stats.latencyMs.count).toBe(4);
    expect(stats.latencyMs.p99).toBeGreaterThanOrEqual(stats.latencyMs.p50);
  });

  test("/stats: the controller's last look at the queue and the fleet, POST latency percentiles, the gallery", async () => {
    harness = await startWebHarness();
    const queues = new MemoryQueueService({ visibilityTimeoutSeconds: 30, maxReceives: 3, deadLetterQueue: "dlq" });
    const queue = queues.queue("requests");
    for (let i = 0; i < 3; i++) await queue.send(`job ${i}`);
    await queue.receive({ maxMessages: 1, waitSeconds: 0 });
    const fleet = new LocalFleet(async () => ({ stop: async () => {} }));
    const scaling = { maxInstances: 2, slotsPerInstance: 1, poolPolicy: "warm" as const, scaleInAfterMs: 1000 };
    const reports = new MemoryJobReports();
    const controller = new Controller({ queue, fleet, reports, scaling, intervalMs: 100, log: captureLogs().logger, metrics: harness.metrics });
    await controller.step();
    await fleet.settled();
    await controller.step();
    const url = await listen(harness);
    const stats = await (await fetch(`${url}/stats`)).json();
    expect(stats).toEqual({
      queue: { visible: 2, inFlight: 1 },
      instances: { pending: 0, running: 2, stopping: 0, stopped: 0, "shutting-down": 0 },
      latencyMs: { count: 0, p50: 0, p90: 0, p99: 0 },
      requestsInFlight: 1,
      subjects: 0,
      faces: 0,
    });
    const samples = parseExposition(await (await fetch(`${url}/metrics`)).text());
    expect(value(samples, "facefleet_request_queue_messages", { state: "visible" })).toBe(2);
    expect(value(samples, "facefleet_app_instances", { state: "running" })).toBe(2);
  });
});

test("stage timings: a stage of 0 ms (an analysis from the cache) is not observed", async () => {
  const metrics = new ServiceMetrics();
  metrics.stagesTimed({ decode: 12, detect: 30, match: 0.4 });
  metrics.stagesTimed({ decode: 0, detect: 0, match: 0.3 });
  const samples = parseExposition(await metrics.registry.metrics());
  const count = (stage: string) => value(samples, "facefleet_inference_stage_duration_seconds_count", { stage });
  expect([count("decode"), count("detect"), count("match")]).toEqual([1, 1, 2]);
});

describe("latency window", () => {
  /** Within one bucket's width of the exact value: the histogram reports the upper bound of the bucket holding it. */
  const withinABucket = (reported: number, exact: number) => reported >= exact && reported <= Math.max(exact * LATENCY_BUCKET_RATIO, 0.1) + 1e-9;
  const expectPercentiles = (reported: LatencyPercentiles, exact: LatencyPercentiles) => {
    expect(reported.count).toBe(exact.count);
    for (const p of ["p50", "p90", "p99"] as const) expect(`${p} ${reported[p]} for ${exact[p]}: ${withinABucket(reported[p], exact[p])}`).toBe(`${p} ${reported[p]} for ${exact[p]}: true`);
  };
  /** Nearest rank over every sample, as the window did before it kept a histogram. */
  const exactPercentiles = (samples: number[]): LatencyPercentiles => {
    const sorted = [...samples].sort((a, b) => a - b);
    const rank = (p: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!);
    return { count: sorted.length, p50: rank(0.5), p90: rank(0.9), p99: rank(0.99) };
  };

  const cases: [string, [number, number][], number, LatencyPercentiles][] = [
    ["empty", [], 0, { count: 0, p50: 0, p90: 0, p99: 0 }],
    ["one request", [[0, 40]], 1000, { count: 1, p50: 40, p90: 40, p99: 40 }],
    ["nearest rank over ten", Array.from({ length: 10 }, (_, i): [number, number] => [i, (i + 1) * 10]), 100, { count: 10, p50: 50, p90: 90, p99: 100 }],
    ["older than the span is forgotten", [[0, 5000], [30_000, 10], [59_000, 20]], 60_000, { count: 2, p50: 10, p90: 20, p99: 20 }],
    ["under 0.1 ms and over 10 min", [[0, 0.01], [0, 0.05], [0, 900_000]], 10, { count: 3, p50: 0.05, p90: 900_000, p99: 900_000 }],
  ];
  for (const [what, entries, now, expected] of cases) {
    test(what, () => {
      const window = new LatencyWindow(60_000);
      for (const [at, ms] of entries) window.add(at, ms);
      expectPercentiles(window.percentiles(now), expected);
    });
  }

  test("100,000 requests over a minute: percentiles within a bucket's width of the exact ones, the minute before forgotten", () => {
    const window = new LatencyWindow(60_000);
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    // The minute before: slow requests that must no longer count.
    for (let i = 0; i < 10_000; i++) window.add(i * 6, 50_000);
    const samples: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      // Log-normal around 400 ms, with a tail of slow ones.
      const ms = Math.exp(Math.log(400) + 0.8 * Math.sqrt(-2 * Math.log(random() || 1e-9)) * Math.cos(2 * Math.PI * random()));
      samples.push(ms);
      window.add(60_000 + Math.floor((i * 60_000) / 100_000), ms);
    }
    expectPercentiles(window.percentiles(119_999), exactPercentiles(samples));
  });

  test("its memory does not grow with the requests it holds", () => {
    const window = new LatencyWindow(60_000);
    window.add(0, 1);
    Bun.gc(true);
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 100_000; i++) window.add(Math.floor(i * 0.6), 1 + (i % 5000));
    Bun.gc(true);
    const grown = process.memoryUsage().heapUsed - before;
    // Keeping each sample took about 5 MB here; the histogram is allocated once.
    expect(grown).toBeLessThan(1_000_000);
    expect(window.percentiles(59_999).count).toBe(100_001);
  });
});

describe("the app role's job series", () => {
  test("answered, refused, failed, redelivered and dead-lettered, as the consumer sees them", async () => {
    const blobs = new FileBlobStore(mkdtempSync(join(tmpdir(), "facefleet-metrics-")));
    const queues = new MemoryQueueService({ visibilityTimeoutSeconds: 1, maxReceives: 2, deadLetterQueue: "dlq" });
    const requestQueue = queues.queue("requests");
    const inBucket = blobs.bucket("in");
    const metrics = new ServiceMetrics();
    const consumer = new Consumer({
      requestQueue,
      deadLetterQueue: queues.queue("dlq"),
      queues,
      slots: 2,
      visibilityTimeoutSeconds: 1,
      maxReceives: 2,
      jobDeadlineMs: 60_000,
      log: captureLogs().logger,
      metrics,
      job: {
        // Reads the image, as the pool does once it admits it, then fails.
        analyzer: { analyze: async (image) => (typeof image === "function" && (await image()), Promise.reject(new Error("the model is broken"))) },
        cache: new AnalysisCache(0),
        gallery: new GalleryReader(blobs.bucket("gallery")),
        inBucket,
        outBucket: blobs.bucket("out"),
        galleryBucket: blobs.bucket("gallery"),
        threshold: fixedThreshold(0.5),
      },
    });
    const job = (jobId: string, inputKey: string): JobMessage => ({ kind: "recognize", jobId, replyTo: "replies", inputKey, name: jobId, sha256: "0".repeat(64), mode: "open" });
    await inBucket.put("present.jpg", new Uint8Array([1, 2, 3]));
    await requestQueue.send(JSON.stringify(job("missing", "absent.jpg"))); // refused: input_missing
    await requestQueue.send(JSON.stringify(job("broken", "present.jpg"))); // fails twice, then dead-lettered (for the controller)
    await requestQueue.send("not a job");
    consumer.start();
    const replies = queues.queue("replies");
    const received: string[] = [];
    const deadLetters = async () => (await queues.queue("dlq").depth()).visible;
    for (let attempt = 0; attempt < 50 && (received.length < 1 || (await deadLetters()) < 2); attempt++) {
      for (const message of await replies.receive({ maxMessages: 10, waitSeconds: 1 })) {
        received.push(JSON.parse(message.body).jobId);
        await replies.delete(message.receiptHandle);
      }
    }
    await consumer.stop();
    // The broken job is not answered by the app: the controller redrives it (roles/controller/dead-letters.ts).
    expect(received).toEqual(["missing"]);
    const samples = parseExposition(await metrics.registry.metrics());
    expect(value(samples, "facefleet_jobs_total", { kind: "recognize", outcome: "refused" })).toBe(1);
    expect(value(samples, "facefleet_jobs_total", { kind: "recognize", outcome: "failed" })).toBe(2);
    expect(value(samples, "facefleet_jobs_total", { kind: "recognize", outcome: "answered" })).toBeUndefined();
    expect(value(samples, "facefleet_jobs_redelivered_total")).toBe(1);
    expect(value(samples, "facefleet_jobs_dead_lettered_total", { reason: "malformed" })).toBe(1);
    expect(value(samples, "facefleet_instance_unhealthy_marks_total")).toBe(0);
  }, 15_000);

  test("an instance that calls itself unhealthy after faults in a row is counted once, carried in its job counts", async () => {
    const blobs = new FileBlobStore(mkdtempSync(join(tmpdir(), "facefleet-metrics-")));
    // One receive each: every fault is a job's first try, which is what makes an instance call itself unhealthy.
    const queues = new MemoryQueueService({ visibilityTimeoutSeconds: 1, maxReceives: 1, deadLetterQueue: "dlq" });
    const requestQueue = queues.queue("requests");
    const metrics = new ServiceMetrics();
    const tally = new JobTally(metrics);
    const consumer = new Consumer({
      requestQueue,
      deadLetterQueue: queues.queue("dlq"),
      queues,
      slots: 1,
      visibilityTimeoutSeconds: 1,
      maxReceives: 1,
      jobDeadlineMs: 60_000,
      log: captureLogs().logger,
      metrics: tally,
      job: {
        analyzer: { analyze: async (image) => (typeof image === "function" && (await image()), Promise.reject(new Error("the model is broken"))) },
        cache: new AnalysisCache(0),
        gallery: new GalleryReader(blobs.bucket("gallery")),
        inBucket: blobs.bucket("in"),
        outBucket: blobs.bucket("out"),
        galleryBucket: blobs.bucket("gallery"),
        threshold: fixedThreshold(0.5),
      },
    });
    await blobs.bucket("in").put("present.jpg", new Uint8Array([1, 2, 3]));
    for (const jobId of ["broken-1", "broken-2", "broken-3"]) {
      await requestQueue.send(JSON.stringify({ kind: "recognize", jobId, replyTo: "replies", inputKey: "present.jpg", name: jobId, sha256: "0".repeat(64), mode: "open" } satisfies JobMessage));
    }
    consumer.start();
    // Faults 1 and 2 pause 1 s and 2 s; the third marks the instance unhealthy.
    await waitFor("the third fault", () => (consumer.status().healthy ? undefined : true), 10_000);
    await consumer.stop();
    const samples = parseExposition(await metrics.registry.metrics());
    expect(value(samples, "facefleet_instance_unhealthy_marks_total")).toBe(1);
    expect(tally.counts().unhealthyMarks).toBe(1);
  }, 15_000);
});

describe("job counters from the app instances' job reports (EC2: the app processes serve no HTTP)", () => {
  const counts = (answered: number, redelivered: number): JobCounts => ({
    tries: [{ kind: "recognize", outcome: "answered", count: answered }],
    redelivered,
    deadLettered: [{ reason: "malformed", count: 1 }],
  });
  const report = (instanceId: string, jobCounts?: JobCounts): JobReport => ({ instanceId, jobs: 0, at: 0, ...(jobCounts && { counts: jobCounts }) });

  test("a process without an app role shows each reported instance's counters under its `instance` label, and only the instances last read", async () => {
    const metrics = new ServiceMetrics("job-reports");
    metrics.jobReportsRead([report("i-1", counts(4, 1)), report("i-2", counts(2, 0)), report("i-3")]);
    let samples = parseExposition(await metrics.registry.metrics());
    expect(value(samples, "facefleet_jobs_total", { instance: "i-1", kind: "recognize", outcome: "answered" })).toBe(4);
    expect(value(samples, "facefleet_jobs_total", { instance: "i-2", kind: "recognize", outcome: "answered" })).toBe(2);
    expect(value(samples, "facefleet_jobs_redelivered_total", { instance: "i-1" })).toBe(1);
    expect(value(samples, "facefleet_jobs_redelivered_total", { instance: "i-2" })).toBe(0);
    expect(value(samples, "facefleet_jobs_dead_lettered_total", { instance: "i-2", reason: "malformed" })).toBe(1);
    expect(samples.filter((sample) => sample.name.startsWith("facefleet_jobs_")).every((sample) => sample.labels.instance === "i-1" || sample.labels.instance === "i-2")).toBe(true);

    metrics.jobReportsRead([report("i-2", counts(3, 0))]);
    samples = parseExposition(await metrics.registry.metrics());
    expect(value(samples, "facefleet_jobs_total", { instance: "i-2", kind: "recognize", outcome: "answered" })).toBe(3);
    expect(samples.some((sample) => sample.labels.instance === "i-1")).toBe(false);
  });

  test("a process with an app role (embedded) shows its own counters once, whatever the reports say", async () => {
    const metrics = new ServiceMetrics();
    const instance = new JobTally(metrics);
    instance.jobTried("recognize", "answered");
    instance.jobTried("recognize", "answered");
    metrics.jobReportsRead([report("local-1", instance.counts())]);
    const samples = parseExposition(await metrics.registry.metrics());
    const jobs = samples.filter((sample) => sample.name === "facefleet_jobs_total");
    expect(jobs).toEqual([{ name: "facefleet_jobs_total", labels: { kind: "recognize", outcome: "answered" }, value: 2 }]);
    expect(value(samples, "facefleet_jobs_redelivered_total")).toBe(0);
  });

  test("app instances with their own metrics, as on EC2: the controller's process shows their jobs per instance from their reports", async () => {
    const config = freshConfig({ controllerIntervalMs: 50, scaleInAfterMs: 60_000, maxAppInstances: 2, slotsPerInstance: 1 });
    const names = resourceNames(config);
    const log = captureLogs().logger;
    const webMetrics = new ServiceMetrics("job-reports");
    const cloud: Cloud = freshLocalCloud(config, async (instanceId) =>
      startAppRole(
        // Each instance its own process, so its own metrics, which nothing serves.
        { config: appConfig(config), names, cloud, log, metrics: new ServiceMetrics() },
        {
          analyzer: { analyze: async () => ({ faces: [], width: 1, height: 1, timings: { decodeMs: 0, detectMs: 0, alignMs: 0, embedMs: 0 } }) },
          cache: new AnalysisCache(0),
          threshold: fixedThreshold(0.5),
          slots: 1,
          instanceId,
        },
      ),
    );
    await cloud.blobs.bucket(names.inBucket).put("job/image.jpg", "bytes");
    const requests = cloud.queues.queue(names.reqQueue);
    const jobs = 4;
    for (let i = 0; i < jobs; i++) {
      const job: JobMessage = { kind: "recognize", jobId: `job-${i}`, replyTo: names.respQueue, inputKey: "job/image.jpg", name: `n${i}`, sha256: `${i}`.repeat(64), mode: "closed" };
      await requests.send(JSON.stringify(job));
    }
    const controller = startControllerRole({ config: controllerConfig(config), names, cloud, log, metrics: webMetrics });
    try {
      // No face in the image: each job is answered with its reason (refused).
      const answered = (samples: Sample[]) => samples.filter((sample) => sample.name === "facefleet_jobs_total" && sample.labels.outcome === "refused");
      const perInstance = await waitFor(
        "every job counted on the controller's /metrics",
        async () => {
          const series = answered(parseExposition(await webMetrics.registry.metrics()));
          return series.reduce((sum, sample) => sum + sample.value, 0) === jobs ? series : undefined;
        },
        15_000,
      );
      const instances = (await cloud.fleet.list()).map((instance) => instance.id);
      expect(perInstance.every((sample) => instances.includes(sample.labels.instance!) && sample.labels.kind === "recognize")).toBe(true);
    } finally {
      await controller.stop();
      await cloud.fleet.terminate((await cloud.fleet.list()).map((instance) => instance.id));
    }
  }, 20_000);
});
