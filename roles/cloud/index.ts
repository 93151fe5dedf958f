/**
 * The two ways to reach the cloud: AWS through SDK v3 (endpoints, region and credentials from the SDK's standard
 * settings), or local stand-ins (local/index.ts, which loads no AWS SDK module).
 */
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { resourceNames, type Config } from "../config.ts";
import { expectBucketOwner } from "./aws/bucket-owner.ts";
import { instanceIdentity } from "./aws/instance-identity.ts";
import { S3BlobStore } from "./aws/s3-bucket.ts";
import { SqsQueueService } from "./aws/sqs-queue.ts";
import { BucketJobReports, instanceArnReportKey } from "./job-reports.ts";
import type { Cloud, Fleet } from "./types.ts";

export { localCloud, type LocalCloud } from "./local/index.ts";

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
    fleet: fleetLoadedOnFirstCall(async () => {
      const [{ EC2Client }, { Ec2Fleet }] = await Promise.all([import("@aws-sdk/client-ec2"), import("./aws/ec2-fleet.ts")]);
      return new Ec2Fleet(new EC2Client(common), { deployment: config.prefix, launchTemplateName: names.launchTemplate, imageId: config.appImageId, network: config.appNetwork });
    }),
    reports: new BucketJobReports(blobs.bucket(names.reportsBucket), instanceArnReportKey()),
  };
}

/**
 * The EC2 fleet, its modules loaded at its first call: the SDK's EC2 client is its largest module (over half a second of
 * an app instance's start-up), and only the controller calls the fleet.
 */
function fleetLoadedOnFirstCall(load: () => Promise<Fleet>): Fleet {
  let loading: Promise<Fleet> | undefined;
  const fleet = () =>
    (loading ??= load().catch((error: unknown) => {
      loading = undefined;
      throw error;
    }));
  return {
    list: async () => (await fleet()).list(),
    launch: async (count) => (await fleet()).launch(count),
    start: async (ids) => (await fleet()).start(ids),
    stop: async (ids) => (await fleet()).stop(ids),
    terminate: async (ids) => (await fleet()).terminate(ids),
  };
}
