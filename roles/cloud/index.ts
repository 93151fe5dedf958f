/** The two ways to reach the cloud: AWS through SDK v3 (endpoints, region and credentials from the SDK's standard settings), or local stand-ins. */
import { EC2Client } from "@aws-sdk/client-ec2";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { objectExpiries, resourceNames, type Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { expectBucketOwner } from "./aws/bucket-owner.ts";
import { instanceIdentity } from "./aws/instance-identity.ts";
import { S3BlobStore } from "./aws/s3-bucket.ts";
import { SqsQueueService } from "./aws/sqs-queue.ts";
import { Ec2Fleet } from "./aws/ec2-fleet.ts";
import { BucketJobReports, instanceArnReportKey } from "./job-reports.ts";
import { FileBlobStore } from "./local/file-bucket.ts";
import { MemoryQueueService } from "./local/memory-queue.ts";
import { MemoryJobReports } from "./local/memory-reports.ts";
import { LocalFleet, type MachineFactory } from "./local/process-fleet.ts";
import type { Cloud } from "./types.ts";

/**
 * Enough attempts, with the SDK's exponential backoff (throttling from 500 ms, capped at 20 s), to ride through
 * throttling and brief 5xx spells. Standard rather than adaptive mode: adaptive also slows every later call of the
 * client after a throttle, which on the request path costs more latency than it saves (measured on the emulator:
 * two throttles cost 2-3 s standard against 4-6 s adaptive).
 */
const MAX_ATTEMPTS = 8;

export function awsCloud(config: Config): Cloud {
  const names = resourceNames(config);
  const common = { maxAttempts: MAX_ATTEMPTS, retryMode: "standard" } as const;
  const s3 = new S3Client({ ...common, forcePathStyle: config.s3ForcePathStyle });
  // On EC2 the account is the instance's own; elsewhere (tests, a laptop) nothing says which it is.
  if (config.instanceMetadata === "required") expectBucketOwner(s3, async () => (await instanceIdentity()).accountId);
  const blobs = new S3BlobStore(s3);
  return {
    blobs,
    queues: new SqsQueueService(new SQSClient(common)),
    fleet: new Ec2Fleet(new EC2Client(common), { deployment: config.prefix, launchTemplateName: names.launchTemplate, imageId: config.appImageId, network: config.appNetwork }),
    reports: new BucketJobReports(blobs.bucket(names.reportsBucket), instanceArnReportKey()),
  };
}

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
