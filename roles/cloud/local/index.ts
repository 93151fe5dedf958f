/** The local stand-ins for the cloud: files on disk, an in-process queue with SQS semantics, in-process app instances. */
import { resourceNames, type Config } from "../../config.ts";
import { EMBEDDING_EXPIRY_DAYS, EMBEDDING_KEY_PREFIX } from "../../deployment.ts";
import type { Logger } from "../../log.ts";
import { BucketJobReports, localReportKey } from "../job-reports.ts";
import type { Cloud } from "../types.ts";
import { FileBlobStore } from "./file-bucket.ts";
import { MemoryQueueService } from "./memory-queue.ts";
import { LocalFleet, type MachineFactory } from "./process-fleet.ts";

/** `log` hears about local instances whose machine failed to start or stop. */
export function localCloud(config: Config, startMachine: MachineFactory, log?: Logger): Cloud {
  const names = resourceNames(config);
  // The same expiry as the lifecycle rule infra/plan.ts puts on the gallery bucket.
  const blobs = new FileBlobStore(config.dataDir, { [names.galleryBucket]: [{ prefix: EMBEDDING_KEY_PREFIX, days: EMBEDDING_EXPIRY_DAYS }] });
  return {
    blobs,
    queues: new MemoryQueueService({
      visibilityTimeoutSeconds: config.visibilityTimeoutSeconds,
      maxReceives: config.maxReceives,
      deadLetterQueue: names.deadLetterQueue,
    }),
    fleet: new LocalFleet(startMachine, config.localBootDelayMs, log),
    reports: new BucketJobReports(blobs.bucket(names.reportsBucket), localReportKey),
  };
}
