/** The app role: takes jobs from the request queue and answers them with the model. */
import type { OpenSetThreshold } from "../../model/index.ts";
import type { AppConfig } from "../config.ts";
import type { RoleContext, RunningRole } from "../context.ts";
import { GalleryReader } from "../gallery-store.ts";
import { JobTally } from "../metrics.ts";
import { AnalysisCache } from "./analysis-cache.ts";
import { Consumer } from "./consumer.ts";
import { JobReporter } from "./job-reporter.ts";
import type { ImageAnalyzer } from "./handle-job.ts";

export interface AppRoleOptions {
  analyzer: ImageAnalyzer;
  cache: AnalysisCache;
  threshold: OpenSetThreshold;
  /** Jobs this instance works on at once. */
  slots: number;
  /**
   * The gallery as this instance reads it; default its own reader. Embedded, the instances share one: each reader
   * loads the whole gallery when it starts, and the controller starts instances again after every scale-in.
   */
  gallery?: GalleryReader;
  instanceId?: string;
}

export function startAppRole({ config, names, cloud, log: rootLog, metrics }: RoleContext<AppConfig>, options: AppRoleOptions): RunningRole {
  const log = rootLog.child({ role: "app", ...(options.instanceId ? { instanceId: options.instanceId } : {}) });
  // The controller scales in only once every instance reports holding no job; an instance without an id has no report.
  // This instance's own counts for its report; embedded, the process's metrics hold every instance's.
  const jobs = new JobTally(metrics);
  const reporter = options.instanceId ? new JobReporter(cloud.reports, options.instanceId, log, () => jobs.counts()) : undefined;
  const consumer = new Consumer({
    requestQueue: cloud.queues.queue(names.reqQueue),
    deadLetterQueue: cloud.queues.queue(names.deadLetterQueue),
    queues: cloud.queues,
    slots: options.slots,
    visibilityTimeoutSeconds: config.visibilityTimeoutSeconds,
    maxReceives: config.maxReceives,
    jobDeadlineMs: config.jobDeadlineMs,
    log,
    metrics: jobs,
    job: {
      analyzer: options.analyzer,
      cache: options.cache,
      gallery: options.gallery ?? new GalleryReader(cloud.blobs.bucket(names.galleryBucket)),
      inBucket: cloud.blobs.bucket(names.inBucket),
      outBucket: cloud.blobs.bucket(names.outBucket),
      galleryBucket: cloud.blobs.bucket(names.galleryBucket),
      threshold: options.threshold,
    },
    onStatus: (status) => reporter?.update(status),
  });
  reporter?.start();
  consumer.start();
  log.info("app_started", { slots: options.slots });
  return {
    async stop() {
      await consumer.stop();
      await reporter?.stop();
      log.info("app_stopped", { jobsDone: consumer.jobsDone });
    },
  };
}
