/** Starts the resolved roles: on EC2 against AWS, or all of them embedded on the local stand-ins. */
import { availableParallelism } from "node:os";
import { inspectImage, InferencePool, operatingPointsFor, thresholdFor } from "../model/index.ts";
import { ImageError } from "../model/types.ts";
import { AnalysisCache } from "./app/analysis-cache.ts";
import { startAppRole } from "./app/index.ts";
import type { RoleResolution } from "./boot.ts";
import { awsCloud, localCloud } from "./cloud/index.ts";
import { EXPIRY_SWEEP_MS } from "./cloud/local/file-bucket.ts";
import { appConfig, controllerConfig, resourceNames, webConfig, type Config } from "./config.ts";
import type { RoleContext, RunningRole } from "./context.ts";
import { GalleryReader } from "./gallery-store.ts";
import { startControllerRole } from "./controller/index.ts";
import type { Logger } from "./log.ts";
import { ServiceMetrics } from "./metrics.ts";
import { startWebRole } from "./web/index.ts";
import type { ImageInspector } from "./web/upload.ts";

export interface RunningRoles extends RunningRole {
  context: RoleContext;
  /** The web role's port, when this process serves HTTP. */
  port?: number;
}

export async function startRoles(config: Config, resolution: RoleResolution, log: Logger): Promise<RunningRoles> {
  if (resolution.roles.includes("all")) return startEmbedded(config, log);
  const metrics = new ServiceMetrics(resolution.roles.includes("app") ? "this-process" : "job-reports");
  const context: RoleContext = { config, names: resourceNames(config), cloud: awsCloud(config), log, health: new Map(), metrics };
  const running: RunningRole[] = [];
  let port: number | undefined;
  if (resolution.roles.includes("app")) {
    const pool = await InferencePool.create({ config: config.model, workers: appInferenceWorkers(config, availableParallelism()) });
    const app = startAppRole({ ...context, config: appConfig(config) }, {
      analyzer: pool,
      cache: new AnalysisCache(config.analysisCacheEntries),
      threshold: thresholdFor(config.model),
      slots: config.slotsPerInstance,
      instanceId: resolution.instanceId,
    });
    running.push({ stop: () => app.stop().then(() => pool.close()) });
  }
  if (resolution.roles.includes("web")) {
    const web = await startWebRole({ ...context, config: webConfig(config) }, { inspect: imageInspector(config.model.maxPixels), operatingPoints: operatingPointsFor(config.model), tokenSource: "input-bucket", exclusive: true });
    port = web.port;
    running.push(web);
  }
  if (resolution.roles.includes("controller")) running.push(startControllerRole({ ...context, config: controllerConfig(config) }, { exclusive: true }));
  return { context, port, stop: () => stopAll(running) };
}

/**
 * Every role in this process on the local stand-ins. The app "instances" the controller starts share one
 * inference pool sized to the machine, so scaling is visible without oversubscribing the cores, and one gallery reader.
 */
export async function startEmbedded(config: Config, log: Logger): Promise<RunningRoles> {
  const pool = await InferencePool.create({ config: config.model });
  const cache = new AnalysisCache(config.analysisCacheEntries);
  const threshold = thresholdFor(config.model);
  const cloud = localCloud(
    config,
    async (instanceId) => startAppRole({ ...context, config: appConfig(config) }, { analyzer: pool, cache, gallery, threshold, slots: config.slotsPerInstance, instanceId }),
    log,
  );
  const names = resourceNames(config);
  const gallery = new GalleryReader(cloud.blobs.bucket(names.galleryBucket));
  const context: RoleContext = { config, names, cloud, log, health: new Map(), metrics: new ServiceMetrics() };
  const web = await startWebRole({ ...context, config: webConfig(config) }, { inspect: imageInspector(config.model.maxPixels), operatingPoints: operatingPointsFor(config.model), tokenSource: "data-dir" });
  const controller = startControllerRole({ ...context, config: controllerConfig(config) });
  const expirySweep = startExpirySweep(() => cloud.blobs.expire(), EXPIRY_SWEEP_MS, log);
  log.info("embedded_started", { port: web.port, dataDir: config.dataDir, inferenceWorkers: pool.stats().workers });
  return {
    context,
    port: web.port,
    async stop() {
      await expirySweep.stop();
      await stopAll([web, controller]);
      const instances = await cloud.fleet.list();
      await cloud.fleet.terminate(instances.map((instance) => instance.id));
      await pool.close();
    },
  };
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
  return async (bytes) => {
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
