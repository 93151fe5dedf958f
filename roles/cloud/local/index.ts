/** The local stand-ins for the cloud: files on disk, an in-process queue with SQS semantics, in-process app instances. */
import { objectExpiries, resourceNames, type Config } from "../../config.ts";
import type { Logger } from "../../log.ts";
import type { Cloud } from "../types.ts";
import { FileBlobStore } from "./file-bucket.ts";
import { MemoryQueueService } from "./memory-queue.ts";
import { MemoryJobReports } from "./memory-reports.ts";
import { LocalFleet, type MachineFactory } from "./process-fleet.ts";

/** The local stand-ins; the embedded process sweeps its file buckets' expired objects. */
export interface LocalCloud extends Cloud {
  blobs: FileBlobStore;
}

/** `log` hears about local instances whose machine failed to start or stop. */
export function localCloud(config: Config, startMachine: MachineFactory, log?: Logger): LocalCloud {
  const names = resourceNames(config);
  // The same expiries as the lifecycle rules infra/plan.ts puts on the deployment's buckets. The input bucket's other
  // keys (_secrets/, _bake/) are short, so a file there named by a digest alone (a long key, as versions before this
  // one named it) is an upload: the retention of uploads takes it too.
  const rules = objectExpiries(config).map((expiry) => ({ ...expiry, legacyDigestNames: expiry.what === "uploads" }));
  const blobs = new FileBlobStore(config.dataDir, Object.groupBy(rules, (expiry) => expiry.bucket));
  return {
    blobs,
    queues: new MemoryQueueService({
      visibilityTimeoutSeconds: config.visibilityTimeoutSeconds,
      maxReceives: config.maxReceives,
      deadLetterQueue: names.deadLetterQueue,
    }),
    fleet: new LocalFleet(startMachine, config.localBootDelayMs, log),
    reports: new MemoryJobReports(),
  };
}
