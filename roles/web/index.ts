/** The web role: HTTP in front, jobs on the request queue, replies from the response queue. */
import type { FarCalibration } from "../../model/index.ts";
import type { RoleContext, RunningRole } from "../context.ts";
import { ConfigError, type WebConfig } from "../config.ts";
import { deploymentLease } from "../cloud/lease.ts";
import { GalleryWriter } from "../gallery-store.ts";
import { startGalleryCompaction } from "./gallery-compaction.ts";
import { bucketApiToken, fixedApiToken, localApiToken, type ApiToken } from "./api-token.ts";
import { ApiKeyStore } from "./api-key-store.ts";
import { createJobSubmitter } from "./jobs.ts";
import { ReplyPoller } from "./reply-poller.ts";
import { createWebServer, type UploadPools } from "./server.ts";
import { readTls } from "./tls.ts";
import { createUploadReader, type ImageInspector } from "./upload.ts";

export interface RunningWebRole extends RunningRole {
  port: number;
}

export interface WebRoleOptions {
  inspect: ImageInspector;
  /** The embedder's calibrated false accept rates, which a request may name (`far`); absent: none, so every `far` is refused. */
  operatingPoints?: FarCalibration;
  /**
   * Where the bearer token comes from when none is configured: a file generated in the data directory (embedded
   * mode), or the private object of the input bucket (EC2, where a missing one stops the boot).
   */
  tokenSource: "data-dir" | "input-bucket";
  /**
   * On a deployment, hold the web lease: the response queue has one consumer, and a second would take and delete the
   * first one's replies. A second web process waits for a dead holder's lease to run out, and refuses to start while
   * the holder renews it. The embedded mode's queues are in its own process.
   */
  exclusive?: boolean;
  /** Called once each job is on the request queue (the controller of this process looks at an idle fleet at once). */
  onJobQueued?: () => void;
}

/**
 * Bun's own body limit, a backstop only, one for the whole server (Bun has none per route): it answers a bare 413 (no
 * code, no request id), from content-length before any handler runs, or once it has received that much of a chunked
 * body. It reads ahead of what a route's reader has taken, so it stays well above the largest body a route takes (the
 * import's bound), each route refusing with a code at its own bound. It bounds no memory: Bun holds a body only as far
 * as a handler reads it (a few MB ahead of one that has not read yet), and reads a body whose handler answered without
 * reading it to its end, dropping it (a chunked one past this bound too). Every route bounds what it reads itself.
 */
export function bodySizeBackstop(config: Pick<WebConfig, "maxBodyBytes" | "maxImportBytes">): number {
  return 2 * Math.max(config.maxBodyBytes, config.maxImportBytes) + 1024 * 1024;
}

export async function startWebRole({ config, names, cloud, log: rootLog, health, metrics }: RoleContext<WebConfig>, options: WebRoleOptions): Promise<RunningWebRole> {
  const log = rootLog.child({ role: "web" });
  const tls = readTls(config);
  const inBucket = cloud.blobs.bucket(names.inBucket);
  const token: ApiToken = config.apiToken
    ? fixedApiToken(config.apiToken)
    : options.tokenSource === "data-dir"
      ? localApiToken(config.dataDir, log)
      : await bucketApiToken(inBucket, log);
  const keys = await ApiKeyStore.open(inBucket, log);
  const lease = options.exclusive ? deploymentLease(cloud.blobs.bucket(names.reportsBucket), "web", log) : undefined;
  if (lease) {
    const taken = await lease.acquireOrRefuse();
    if (!taken.held) {
      token.stop();
      keys.stop();
      throw new ConfigError(
        `another web process of this deployment is running (${taken.holder}): it consumes the response queue ${names.respQueue}, and a second would take its replies. Stop it first, or start this one with another FACEFLEET_PREFIX.`,
      );
    }
    lease.start();
  }
  const poller = new ReplyPoller(cloud.queues.queue(names.respQueue), log, lease && (() => lease.holds()));
  // This process is the gallery's one writer on a deployment (it holds the web lease): it compacts it too.
  const gallery = await GalleryWriter.open(cloud.blobs.bucket(names.galleryBucket), log, { onChange: () => compaction.changed() });
  const compaction = startGalleryCompaction(gallery, config.galleryEraseWithinMs, log);
  metrics.readGalleryFrom(() => gallery.size);
  const jobs = createJobSubmitter({
    inBucket,
    outBucket: cloud.blobs.bucket(names.outBucket),
    requestQueue: cloud.queues.queue(names.reqQueue),
    replyQueueName: names.respQueue,
    poller,
    timeoutMs: config.requestTimeoutMs,
    mode: config.answerMode,
    galleryVersion: () => gallery.version,
    onJobQueued: options.onJobQueued,
  });
  const uploadReader = () =>
    createUploadReader({
      bucket: inBucket,
      inspect: options.inspect,
      limits: {
        maxFileBytes: config.maxUploadBytes,
        maxBodyBytes: config.maxBodyBytes,
        concurrentBodies: config.concurrentUploads,
        perClient: config.uploadsPerClient,
        slotWaitMs: config.uploadWaitMs,
        maxQueued: config.uploadQueueLength,
        bodyTimeoutMs: config.bodyTimeoutMs,
        pace: { minBytesPerSecond: config.minBodyRate, graceMs: config.bodyRateGraceMs },
      },
    });
  // Two pools, so that strangers' bodies on the open classic route never hold the slots of the authenticated API.
  const uploads: UploadPools = { classic: uploadReader(), api: uploadReader() };
  const app = createWebServer({
    jobs,
    gallery,
    uploads,
    maxImportBytes: config.maxImportBytes,
    log,
    metrics,
    token: () => token.current(),
    keys,
    classicAuth: config.classicAuth,
    operatingPoints: options.operatingPoints ?? [],
    classicRateLimit: config.classicRateLimit,
    trustProxy: config.trustProxy,
    health: () => ({
      role: "web",
      waitingRequests: poller.pending.size,
      uploadsReading: uploads.classic.slots.reading + uploads.api.slots.reading,
      uploadsQueued: uploads.classic.slots.queued + uploads.api.slots.queued,
      subjects: gallery.subjectCount,
      ...Object.fromEntries([...(health ?? [])].map(([role, read]) => [role, read()])),
    }),
  });
  try {
    // Elysia turns SO_REUSEPORT on by default: a second process on the port would then share it silently. It also
    // leaves Bun's development mode on unless NODE_ENV=production, whose answer to an uncaught error is a page with
    // the source, its paths and the stack.
    app.listen({ hostname: config.host, port: config.port, reusePort: false, development: false, maxRequestBodySize: bodySizeBackstop(config), ...(tls ? { tls } : {}) });
  } catch (error) {
    token.stop();
    keys.stop();
    await lease?.stop();
    compaction.stop();
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
      throw new ConfigError(`port ${config.port} on ${config.host} is in use by another process: stop it, or set FACEFLEET_PORT to a free port`);
    }
    if (!tls) throw error;
    throw new ConfigError(`cannot serve HTTPS with tlsCertFile ${config.tlsCertFile} and tlsKeyFile ${config.tlsKeyFile}: ${(error as Error).message}`);
  }
  poller.start();
  const port = app.server?.port ?? config.port;
  log.info("web_listening", { host: config.host, port, protocol: tls ? "https" : "http", classicAuth: config.classicAuth });
  return {
    port,
    async stop() {
      compaction.stop();
      await app.stop();
      await poller.stop();
      await lease?.stop();
      token.stop();
      keys.stop();
    },
  };
}
