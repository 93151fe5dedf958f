// What must survive: an app instance dying mid-job, a request outliving its timeout, a damaged stored gallery. The
// photos are the sample set of tests/fixtures (strangers in open-set mode: tests/service/sample-set.test.ts).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InferencePool, thresholdFor, type ImageSource } from "../../model/index.ts";
import { AnalysisCache } from "../../roles/app/analysis-cache.ts";
import { startAppRole } from "../../roles/app/index.ts";
import { localCloud } from "../../roles/cloud/index.ts";
import type { JobQueue } from "../../roles/cloud/types.ts";
import { controllerConfig, loadConfig, resourceNames, type Config } from "../../roles/config.ts";
import { startControllerRole } from "../../roles/controller/index.ts";
import { LEGACY_GALLERY_KEY } from "../../roles/deployment.ts";
import type { RoleContext } from "../../roles/context.ts";
import { imageInspector } from "../../roles/start.ts";
import { startWebRole } from "../../roles/web/index.ts";
import { queryPhotos, queryRequests } from "../support/fixtures.ts";
import { captureLogs, enrollSampleSet, postImage, startService, upload } from "./support.ts";
import * as hostile from "../support/hostile-images.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

const images = queryPhotos();

/** A web role on the local cloud, with no app instance yet: the test starts the ones it needs. */
async function webRoleAlone(dataDir: string, overrides: Partial<Config>) {
  const config = loadConfig({}, { host: "127.0.0.1", port: 0, dataDir, ...overrides });
  const logs = captureLogs();
  const cloud = localCloud(config, async () => ({ stop: async () => {} }));
  const context: RoleContext = { config, names: resourceNames(config), cloud, log: logs.logger, metrics: new ServiceMetrics() };
  const web = await startWebRole(context, { inspect: imageInspector(config.model.maxPixels), tokenSource: "data-dir" });
  return { config, logs, cloud, context, web };
}

/** The same with the controller role beside it (it drains the dead-letter queue); `stop` stops both. */
async function webAndController(dataDir: string, overrides: Partial<Config>) {
  const alone = await webRoleAlone(dataDir, overrides);
  const controller = startControllerRole({ ...alone.context, config: controllerConfig(alone.config) });
  return { ...alone, stop: () => controller.stop().then(() => alone.web.stop()) };
}

/**
 * Takes the job `times` times and dies each time holding it (no reply, no delete, no heartbeat: a SIGKILL); a poll
 * that brings nothing has dead-lettered it. The receive counts of the deliveries.
 */
async function dieHolding(requestQueue: JobQueue, times: number): Promise<number[]> {
  const counts: number[] = [];
  for (let polls = 0; counts.length < times && polls < 20; polls++) {
    const [taken] = await requestQueue.receive({ maxMessages: 1, waitSeconds: 3 });
    if (taken) counts.push(taken.receiveCount);
  }
  return counts;
}

/** Waits for the dead-letter queue to hold just the kept copy, hidden: set aside for the operator. */
async function waitForKept(context: RoleContext): Promise<void> {
  const deadLetterQueue = context.cloud.queues.queue(context.names.deadLetterQueue);
  for (let i = 0; i < 50 && (await deadLetterQueue.depth()).visible > 0; i++) await Bun.sleep(100);
  expect(await deadLetterQueue.depth()).toEqual({ visible: 0, inFlight: 1 });
}

/** Fails at once, as a model whose worker cannot load. */
const brokenModel = { analyze: () => Promise.reject(new Error("the model is broken")) };

describe("resilience", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "facefleet-resilience-"));
  let pool: InferencePool;

  beforeAll(async () => {
    const service = await startService({}, dataDir);
    await enrollSampleSet(service);
    await service.stop();
    pool = await InferencePool.create({ config: loadConfig({}).model, workers: 1 });
  });
  afterAll(() => pool?.close());

  test("an app instance that dies mid-job loses nothing: the job is redelivered and answered once", async () => {
    const { config, logs, cloud, context, web } = await webRoleAlone(dataDir, { visibilityTimeoutSeconds: 1 });
    const answer = postImage(`http://127.0.0.1:${web.port}`, images[3]!.file);
    // A consumer takes the job and dies: no reply, no delete, no heartbeat, as after a SIGKILL.
    const [taken] = await cloud.queues.queue(context.names.reqQueue).receive({ maxMessages: 1, waitSeconds: 5 });
    expect(taken?.receiveCount).toBe(1);
    const survivor = startAppRole(context, { analyzer: pool, cache: new AnalysisCache(), threshold: thresholdFor(config.model), slots: 1, instanceId: "survivor" });
    const response = await answer;
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(`${images[3]!.name}:${images[3]!.person}`);
    const done = logs.lines.filter((line) => line.event === "job_done");
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({ instanceId: "survivor", receiveCount: 2 });
    expect(logs.lines.filter((line) => line.event === "reply_dropped")).toHaveLength(0);
    expect(await cloud.queues.queue(context.names.reqQueue).depth()).toEqual({ visible: 0, inFlight: 0 });
    await survivor.stop();
    await web.stop();
  }, 20_000);

  test("a sick instance next to a healthy one hands its jobs back: 20 of 20 answered correctly, none dead-lettered", async () => {
    const { config, logs, cloud, context, web } = await webRoleAlone(dataDir, { requestTimeoutMs: 20_000, analysisCacheEntries: 0 });
    // Fails fast: it would take most deliveries.
    const broken = startAppRole(context, { analyzer: brokenModel, cache: new AnalysisCache(0), threshold: { at: () => 0.5 }, slots: 1, instanceId: "broken" });
    const healthy = startAppRole(context, { analyzer: pool, cache: new AnalysisCache(0), threshold: thresholdFor(config.model), slots: 1, instanceId: "healthy" });
    try {
      const asked = queryRequests(20);
      const answers = await Promise.all(asked.map(async (image) => {
        const response = await postImage(`http://127.0.0.1:${web.port}`, image.file, `${image.name}.jpg`);
        return `${response.status} ${await response.text()}`;
      }));
      expect(answers).toEqual(asked.map((image) => `200 ${image.name}:${image.person}`));
      expect(await cloud.queues.queue(context.names.deadLetterQueue).depth()).toEqual({ visible: 0, inFlight: 0 });
      const handedBack = logs.lines.filter((line) => line.event === "job_handed_back");
      expect(handedBack.length).toBeGreaterThan(0);
      expect(handedBack.every((line) => line.instanceId === "broken")).toBe(true);
      // The broken instance backs off (1 s, 2 s, ...): it does not take most deliveries.
      expect(handedBack.length).toBeLessThan(10);
    } finally {
      await broken.stop();
      await healthy.stop();
      await web.stop();
    }
  });

  test("a job that fails on every try: dead-lettered after maxReceives, then answered job_failed by the controller (no redrives left), and kept", async () => {
    const { logs, context, web, stop } = await webAndController(dataDir, { maxReceives: 2, maxRedrives: 0, requestTimeoutMs: 20_000, analysisCacheEntries: 0 });
    const app = startAppRole(context, { analyzer: brokenModel, cache: new AnalysisCache(0), threshold: { at: () => 0.5 }, slots: 1, instanceId: "broken" });
    try {
      const started = performance.now();
      const response = await postImage(`http://127.0.0.1:${web.port}`, images[2]!.file);
      expect(response.status).toBe(500);
      const body = (await response.json()) as { error: string; message: string };
      expect(body.error).toBe("job_failed");
      // The reason stays in the log, under the request id the caller got.
      const failed = logs.lines.find((line) => line.event === "request_failed");
      expect(failed).toMatchObject({ requestId: response.headers.get("x-request-id"), code: "job_failed" });
      // Released at once after each fault, the second try a second later (the breaker's pause), not at a visibility
      // timeout; the caller hears well before its timeout.
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(logs.lines.filter((line) => line.event === "job_handed_back").map((line) => [line.receiveCount, line.lastReceive])).toEqual([[1, false], [2, true]]);
      expect(logs.lines.filter((line) => line.event === "job_failed").map((line) => line.role)).toEqual(["controller"]);
      await waitForKept(context);
    } finally {
      await app.stop();
      await stop();
    }
  });

  test("a job that fails on every try of every redrive is answered job_failed by the controller, and marks no instance unhealthy", async () => {
    const { logs, context, web, stop } = await webAndController(dataDir, { maxReceives: 2, maxRedrives: 1, requestTimeoutMs: 25_000, analysisCacheEntries: 0 });
    const app = startAppRole(context, { analyzer: brokenModel, cache: new AnalysisCache(0), threshold: { at: () => 0.5 }, slots: 1, instanceId: "lone" });
    try {
      const response = await postImage(`http://127.0.0.1:${web.port}`, images[2]!.file);
      expect(response.status).toBe(500);
      expect(((await response.json()) as { error: string }).error).toBe("job_failed");
      // Four tries on the one instance: only the first counts toward its health.
      expect(logs.lines.filter((line) => line.event === "job_handed_back").map((line) => line.receiveCount)).toEqual([1, 2, 1, 2]);
      expect(logs.lines.filter((line) => line.event === "instance_unhealthy")).toEqual([]);
      await waitForKept(context);
    } finally {
      await app.stop();
      await stop();
    }
  });

  test("a job whose holders die maxReceives times is dead-lettered, redriven by the controller and answered correctly, once", async () => {
    const { config, logs, cloud, context, web, stop } = await webAndController(dataDir, { visibilityTimeoutSeconds: 1, maxReceives: 2, requestTimeoutMs: 20_000 });
    try {
      const image = images[1]!;
      const answer = postImage(`http://127.0.0.1:${web.port}`, image.file);
      expect(await dieHolding(cloud.queues.queue(context.names.reqQueue), 2)).toEqual([1, 2]);
      // The next receive dead-letters it; the controller sends it again as a new message.
      const survivor = startAppRole(context, { analyzer: pool, cache: new AnalysisCache(0), threshold: thresholdFor(config.model), slots: 1, instanceId: "survivor" });
      try {
        const response = await answer;
        expect(`${response.status} ${await response.text()}`).toBe(`200 ${image.name}:${image.person}`);
      } finally {
        await survivor.stop();
      }
      expect(logs.lines.filter((line) => line.event === "job_redriven")).toMatchObject([{ redrives: 1, maxRedrives: 1, role: "controller" }]);
      expect(logs.lines.filter((line) => line.event === "job_done")).toMatchObject([{ instanceId: "survivor", receiveCount: 1 }]);
      expect(logs.lines.filter((line) => line.event === "reply_dropped")).toHaveLength(0);
      expect(await cloud.queues.queue(context.names.deadLetterQueue).depth()).toEqual({ visible: 0, inFlight: 0 });
    } finally {
      await stop();
    }
  }, 30_000);

  test("a job whose holders die on every try of every redrive: its caller gets job_failed once, and the job is kept for the operator", async () => {
    const { logs, cloud, context, web, stop } = await webAndController(dataDir, { visibilityTimeoutSeconds: 1, maxReceives: 2, maxRedrives: 1, requestTimeoutMs: 20_000 });
    try {
      const answer = postImage(`http://127.0.0.1:${web.port}`, images[0]!.file);
      // Two receives, dead-lettered, redriven, two more receives; the next receive dead-letters it again.
      const requestQueue = cloud.queues.queue(context.names.reqQueue);
      expect(await dieHolding(requestQueue, 4)).toEqual([1, 2, 1, 2]);
      expect(await requestQueue.receive({ maxMessages: 1, waitSeconds: 3 })).toEqual([]);
      const response = await answer;
      expect(response.status).toBe(500);
      expect(((await response.json()) as { error: string }).error).toBe("job_failed");
      await waitForKept(context);
      expect(logs.lines.filter((line) => line.event === "job_redriven")).toHaveLength(1);
      expect(logs.lines.filter((line) => line.event === "job_failed")).toMatchObject([{ redrives: 1, maxRedrives: 1 }]);
      // Kept, not redriven or answered again.
      await Bun.sleep(500);
      expect(logs.lines.filter((line) => line.event === "job_failed")).toHaveLength(1);
      expect(await cloud.queues.queue(context.names.reqQueue).depth()).toEqual({ visible: 0, inFlight: 0 });
    } finally {
      await stop();
    }
  }, 30_000);

  test("a job past its deadline is abandoned and handed back, and a second try answers it", async () => {
    const { config, logs, context, web } = await webRoleAlone(dataDir, { jobDeadlineMs: 500, requestTimeoutMs: 20_000, analysisCacheEntries: 0 });
    let calls = 0;
    const abandoned: unknown[] = [];
    // The first image hangs for ever, as a stuck worker would; later ones are answered.
    const hangsOnce = {
      analyze(image: ImageSource, signal?: AbortSignal) {
        if (calls++ > 0) return pool.analyze(image, signal);
        return new Promise<never>((_, reject) => signal?.addEventListener("abort", () => (abandoned.push(signal.reason), reject(signal.reason))));
      },
    };
    const app = startAppRole(context, { analyzer: hangsOnce, cache: new AnalysisCache(0), threshold: thresholdFor(config.model), slots: 1, instanceId: "hangs" });
    try {
      const image = images[4]!;
      const response = await postImage(`http://127.0.0.1:${web.port}`, image.file);
      expect(await response.text()).toBe(`${image.name}:${image.person}`);
      expect(abandoned).toHaveLength(1);
      expect(logs.lines.find((line) => line.event === "job_handed_back")).toMatchObject({ receiveCount: 1, error: expect.stringContaining("deadline of 500 ms") });
    } finally {
      await app.stop();
      await web.stop();
    }
  });

  test("a request that waits too long gets 504 with its request id; its result still lands in the output bucket", async () => {
    const service = await startService({ requestTimeoutMs: 1, analysisCacheEntries: 0 }, dataDir);
    try {
      const image = images[5]!;
      const outBucket = service.context.cloud.blobs.bucket(service.context.names.outBucket);
      await outBucket.delete(image.name);
      const response = await postImage(service.url, image.file);
      expect(response.status).toBe(504);
      const body = (await response.json()) as { error: string; requestId: string };
      expect(body.error).toBe("timeout");
      expect(body.requestId).toMatch(/^[0-9a-f-]{36}$/);
      let stored: Uint8Array | undefined;
      for (let i = 0; i < 100 && !stored; i++) {
        stored = await outBucket.get(image.name);
        if (!stored) await Bun.sleep(50);
      }
      expect(new TextDecoder().decode(stored)).toBe(image.person);
    } finally {
      await service.stop();
    }
  });

  test("a damaged stored gallery does not stop the web role: it starts empty, keeps the damaged bytes aside, says so, and the next enrollment replaces it", async () => {
    const damagedDir = mkdtempSync(join(tmpdir(), "facefleet-damaged-"));
    const config = loadConfig({}, { dataDir: damagedDir });
    const galleryBucket = localCloud(config, async () => ({ stop: async () => {} })).blobs.bucket(resourceNames(config).galleryBucket);
    await galleryBucket.put(LEGACY_GALLERY_KEY, "not a gallery at all");
    const service = await startService({ analysisCacheEntries: 0 }, damagedDir);
    try {
      const unreadable = service.logs.lines.find((line) => line.event === "gallery_unreadable");
      const keptAt = String(unreadable?.keptAt);
      expect(unreadable?.level).toBe("error");
      expect(keptAt).toStartWith(`${LEGACY_GALLERY_KEY}.unreadable-`);
      expect(new TextDecoder().decode(await galleryBucket.get(keptAt))).toBe("not a gallery at all");
      expect(await (await fetch(`${service.url}/v1/subjects`, { headers: service.auth })).json()).toMatchObject({ subjects: [], total: 0 });
      // The damaged blob is aside before any app instance reads the gallery: they answer as for an empty one.
      const before = await postImage(service.url, images[0]!.file);
      expect(before.status).toBe(409);
      expect(service.logs.lines.filter((line) => line.event === "job_handed_back")).toHaveLength(0);
      await enrollSampleSet(service);
      expect(await (await postImage(service.url, images[0]!.file)).text()).toBe(`${images[0]!.name}:${images[0]!.person}`);
    } finally {
      await service.stop();
    }
  });
});

describe("corrupt images on the embedded service: the image's failure, not the instance's", () => {
  test("metadata bombs, three WebPs with garbage after their header, JPEGs naming undefined tables, a 12-bit JPEG, an inconsistent progressive JPEG: each 400 on the first try, nothing handed back, no instance unhealthy or replaced", async () => {
    const service = await startService({ requestTimeoutMs: 20_000 });
    try {
      const webp = hostile.webpWithGarbage();
      // Every hostile image the web role reads whole before it answers, and two more WebPs like the first (three of
      // them replaced every instance). The larger ones (the zTXt bomb, a 2 MB EXIF chunk) are refused from their first
      // 64 KiB, and a body the client is still sending after its answer can hold the embedded service's stop (a Bun
      // server waits for it): tests/web/upload.test.ts sends them to a web role of its own.
      const all = await Promise.all(hostile.HOSTILE_IMAGES.map(async (image, index): Promise<[string, Uint8Array, string]> => [`hostile-${index}`, await image.make(), image.refusal]));
      const sent: [string, Uint8Array, string][] = [
        ...all.filter(([, bytes]) => bytes.byteLength < 64 * 1024),
        ["webp-2", Buffer.concat([webp.subarray(0, -1), Buffer.from([1])]), "undecodable"],
        ["webp-3", Buffer.concat([webp.subarray(0, -1), Buffer.from([2])]), "undecodable"],
      ];
      const started = performance.now();
      const answers = await Promise.all(sent.map(async ([name, bytes]) => {
        const response = await fetch(`${service.url}/`, { method: "POST", body: upload("inputFile", bytes, `${name}.img`) });
        const answer = [name, response.status, ((await response.json()) as { error: string }).error];
        return answer;
      }));
      expect(answers).toEqual(sent.map(([name, , refusal]) => [name, 400, refusal]));
      expect(performance.now() - started).toBeLessThan(8_000);
      // The ones the web role's header check passed reached an instance and were answered on their first receive.
      const done = service.logs.lines.filter((line) => line.event === "job_done");
      expect(done.map((line) => [line.receiveCount, line.code])).toEqual(Array.from({ length: 6 }, () => [1, "undecodable"]));
      // Give the controller a few of its health readings (every 50 ms here, reports every second).
      await Bun.sleep(1_500);
      for (const event of ["job_handed_back", "instance_unhealthy", "replace_unhealthy", "job_redriven", "job_failed"]) {
        expect({ event, lines: service.logs.lines.filter((line) => line.event === event) }).toEqual({ event, lines: [] });
      }
    } finally {
      await service.stop();
    }
  });
});
