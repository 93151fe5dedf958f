/**
 * Starts the resolved roles: on EC2 against AWS, or all of them embedded on the local stand-ins. Each role's modules
 * (and the AWS SDK's) are loaded only when this process plays that role: an app instance's start-up is on the path of
 * every scale-out, and the embedded mode needs no AWS SDK at all.
 */
import { availableParallelism } from "node:os";
import { InferencePool } from "../model/pool.ts";
import { operatingPointsFor, thresholdFor } from "../model/registry.ts";
import { ImageError } from "../model/types.ts";
import { AnalysisCache } from "./app/analysis-cache.ts";
import type { RoleResolution } from "./boot.ts";
import { EXPIRY_SWEEP_MS } from "./cloud/local/file-bucket.ts";
import { localCloud } from "./cloud/local/index.ts";
import { appConfig, controllerConfig, resourceNames, webConfig, type Config } from "./config.ts";
import type { RoleContext, RunningRole } from "./context.ts";
import { GalleryReader } from "./gallery-store.ts";
import type { Logger } from "./log.ts";
import { ServiceMetrics } from "./metrics.ts";
import type { RunningControllerRole } from "./controller/index.ts";
import type { ImageInspector } from "./web/upload.ts";

export interface RunningRoles extends RunningRole {
  context: RoleContext;
  /** The web role's port, when this process serves HTTP. */
  port?: number;
}

export async function startRoles(config: Config, resolution: RoleResolution, log: Logger): Promise<RunningRoles> {
  if (resolution.roles.includes("all")) return startEmbedded(config, log);
  // An app instance's workers load their models on their own threads while this one loads the rest.
  const loadingPool = resolution.roles.includes("app") ? InferencePool.create({ config: config.model, workers: appInferenceWorkers(config, availableParallelism()) }) : undefined;
  loadingPool?.catch(() => {}); // awaited below
  const metrics = new ServiceMetrics(resolution.roles.includes("app") ? "this-process" : "job-reports");
  const { awsCloud } = await import("./cloud/index.ts");
  const context: RoleContext = { config, names: resourceNames(config), cloud: awsCloud(config), log, health: new Map(), metrics };
  const running: RunningRole[] = [];
  let port: number | undefined;
  if (resolution.roles.includes("app")) {
    // The gallery is read while the workers load their models, not on the first job.
    const gallery = preloadedGallery(context);
    const [pool, { startAppRole }] = await Promise.all([loadingPool!, import("./app/index.ts")]);
    const app = startAppRole({ ...context, config: appConfig(config) }, {
      analyzer: pool,
      cache: new AnalysisCache(config.analysisCacheEntries),
      gallery,
      threshold: thresholdFor(config.model),
      slots: config.slotsPerInstance,
      instanceId: resolution.instanceId,
    });
    running.push({ stop: () => app.stop().then(() => pool.close()) });
  }
  let controller: RunningControllerRole | undefined;
  if (resolution.roles.includes("web")) {
    const { startWebRole } = await import("./web/index.ts");
    const web = await startWebRole(
      { ...context, config: webConfig(config) },
      { inspect: imageInspector(config.model.maxPixels), operatingPoints: operatingPointsFor(config.model), tokenSource: "input-bucket", exclusive: true, onJobQueued: () => controller?.jobQueued() },
    );
    port = web.port;
    running.push(web);
  }
  if (resolution.roles.includes("controller")) {
    const { startControllerRole } = await import("./controller/index.ts");
    controller = startControllerRole({ ...context, config: controllerConfig(config) }, { exclusive: true });
    running.push(controller);
  }
  return { context, port, stop: () => stopAll(running) };
}

/**
 * Every role in this process on the local stand-ins. The app "instances" the controller starts share one
 * inference pool sized to the machine, so scaling is visible without oversubscribing the cores, and one gallery reader.
 */
export async function startEmbedded(config: Config, log: Logger): Promise<RunningRoles> {
  // The workers load their models on their own threads while this one loads the roles and starts the web role.
  const loadingPool = InferencePool.create({ config: config.model });
  const [{ startAppRole }, { startWebRole }, { startControllerRole }] = await Promise.all([import("./app/index.ts"), import("./web/index.ts"), import("./controller/index.ts")]).catch(async (error: unknown) => {
    await loadingPool.then((pool) => pool.close(), () => {});
    throw error;
  });
  const cache = new AnalysisCache(config.analysisCacheEntries);
  const threshold = thresholdFor(config.model);
  let pool: InferencePool | undefined;
  let controller: RunningControllerRole | undefined;
  const cloud = localCloud(
    config,
    // Called by the controller, which starts once the pool has loaded.
    async (instanceId) => startAppRole({ ...context, config: appConfig(config) }, { analyzer: pool!, cache, gallery, threshold, slots: config.slotsPerInstance, instanceId }),
    log,
  );
  const names = resourceNames(config);
  const context: RoleContext = { config, names, cloud, log, health: new Map(), metrics: new ServiceMetrics() };
  const gallery = new GalleryReader(cloud.blobs.bucket(names.galleryBucket));
  // The controller, which starts app instances, once the models are loaded and the web role listens.
  const [loaded, web] = await Promise.allSettled([
    loadingPool,
    startWebRole({ ...context, config: webConfig(config) }, { inspect: imageInspector(config.model.maxPixels), operatingPoints: operatingPointsFor(config.model), tokenSource: "data-dir", onJobQueued: () => controller?.jobQueued() }),
  ]);
  if (loaded.status === "rejected" || web.status === "rejected") {
    if (loaded.status === "fulfilled") await loaded.value.close();
    if (web.status === "fulfilled") await web.value.stop();
    throw loaded.status === "rejected" ? loaded.reason : (web as PromiseRejectedResult).reason;
  }
  pool = loaded.value;
  controller = startControllerRole({ ...context, config: controllerConfig(config) });
  const expirySweep = startExpirySweep(() => cloud.blobs.expire(), EXPIRY_SWEEP_MS, log);
  log.info("embedded_started", { port: web.value.port, dataDir: config.dataDir, inferenceWorkers: pool.stats().workers });
  return {
    context,
    port: web.value.port,
    async stop() {
      await expirySweep.stop();
      await stopAll([web.value, controller!]);
      const instances = await cloud.fleet.list();
      await cloud.fleet.terminate(instances.map((instance) => instance.id));
      await pool.close();
    },
  };
}

/** The app role's gallery, its first read started now (a failed read is tried again by the first job). */
function preloadedGallery({ cloud, names }: RoleContext): GalleryReader {
  const gallery = new GalleryReader(cloud.blobs.bucket(names.galleryBucket));
  gallery.current().catch(() => {});
  return gallery;
}

/**
 * Runs `sweep` every `everyMs`, one at a time (a sweep still running when the next is due skips it). `stop` clears the
 * timer and resolves once a sweep under way has finished, so nothing touches the data directory after it.
 */
export function startExpirySweep(sweep: () => Promise<number>, everyMs: number, log: Logger): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = sweep()
      .then(
        (expired) => void (expired > 0 && log.info("objects_expired", { expired })),
        (error: Error) => log.warn("expiry_sweep_failed", { error: error.message }),
      )
      .finally(() => (running = undefined));
  }, everyMs).unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

/**
 * Inference workers of an app-only process: the configured number, else one per job slot up to one per core. A worker
 * takes one image at a time, so workers beyond the slots would only hold memory and slow the boot.
 */
export function appInferenceWorkers(config: Config, cores: number): number {
  return config.model.workers || Math.min(cores, config.slotsPerInstance);
}

/** The web role's image inspector over the model's: the model's image errors become problems the web role reports. */
export function imageInspector(maxPixels: number): ImageInspector {
  // The decoder (sharp) is loaded only by a process with a web role; the app's decoding is its workers'.
  const decoder = import("../model/decode.ts");
  return async (bytes) => {
    const { inspectImage } = await decoder;
    try {
      await inspectImage(bytes, maxPixels);
      return undefined;
    } catch (error) {
      if (error instanceof ImageError) return { code: error.code, message: error.message };
      throw error;
    }
  };
}

async function stopAll(roles: RunningRole[]): Promise<void> {
  for (const role of [...roles].reverse()) await role.stop();
}
