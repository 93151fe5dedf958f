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
import { loadConfig, resourceNames, type Config } from "../../roles/config.ts";
import { GALLERY_KEY } from "../../roles/deployment.ts";
import type { RoleContext } from "../../roles/context.ts";
import { imageInspector } from "../../roles/start.ts";
import { startWebRole } from "../../roles/web/index.ts";
import { queryPhotos, queryRequests } from "../support/fixtures.ts";
import { captureLogs, enrollSampleSet, postImage, startService } from "./support.ts";
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

  test("a job that fails on every try is set aside after maxReceives, and its caller hears at once (500), not at its timeout", async () => {
    const { logs, context, web } = await webRoleAlone(dataDir, { maxReceives: 2, requestTimeoutMs: 20_000, analysisCacheEntries: 0 });
    const app = startAppRole(context, { analyzer: brokenModel, cache: new AnalysisCache(0), threshold: { at: () => 0.5 }, slots: 1, instanceId: "broken" });
    try {
      const started = performance.now();
      const response = await postImage(`http://127.0.0.1:${web.port}`, images[2]!.file);
      expect(response.status).toBe(500);
      const body = (await response.json()) as { error: string; message: string };
      expect(body.error).toBe("job_failed");
      // The reason stays in the log, under the request id the caller got.
      expect(JSON.stringify(body)).not.toContain("the model is broken");
      const failed = logs.lines.find((line) => line.event === "request_failed");
      expect(failed).toMatchObject({ requestId: response.headers.get("x-request-id"), code: "job_failed" });
      expect(JSON.stringify(failed)).toContain("the model is broken");
      expect(performance.now() - started).toBeLessThan(10_000);
      // Released at once after the first fault, the second try a second later (the breaker's pause), not at a visibility timeout.
      expect(logs.lines.filter((line) => line.event === "job_handed_back").map((line) => line.receiveCount)).toEqual([1]);
      expect(logs.lines.filter((line) => line.event === "job_failed").map((line) => line.receiveCount)).toEqual([2]);
    } finally {
      await app.stop();
      await web.stop();
    }
  });

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
    await galleryBucket.put(GALLERY_KEY, "not a gallery at all");
    const service = await startService({ analysisCacheEntries: 0 }, damagedDir);
    try {
      const unreadable = service.logs.lines.find((line) => line.event === "gallery_unreadable");
      const keptAt = String(unreadable?.keptAt);
      expect(unreadable?.level).toBe("error");
      expect(keptAt).toStartWith(`${GALLERY_KEY}.unreadable-`);
      expect(new TextDecoder().decode(await galleryBucket.get(keptAt))).toBe("not a gallery at all");
      expect(await (await fetch(`${service.url}/v1/subjects`, { headers: service.auth })).json()).toMatchObject({ subjects: [], total: 0 });
      // An app instance answers, rather than calling itself sick: the damage is the gallery's.
      const before = await postImage(service.url, images[0]!.file);
      expect(before.status).toBe(500);
      expect(service.logs.lines.filter((line) => line.event === "job_handed_back")).toHaveLength(0);
      await enrollSampleSet(service);
      expect(await (await postImage(service.url, images[0]!.file)).text()).toBe(`${images[0]!.name}:${images[0]!.person}`);
    } finally {
      await service.stop();
    }
  });
});
