/**
 * The two clouds the contract suites run against: the local stand-ins, and the AWS implementations built by
 * `awsCloud(config)` exactly as the service builds them, reaching the emulated region only through the SDK's
 * standard environment settings (AWS_REGION, AWS_ENDPOINT_URL_*, credentials).
 */
import { afterAll, beforeAll, describe } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { awsCloud, localCloud } from "../../roles/cloud/index.ts";
import type { MachineFactory } from "../../roles/cloud/local/process-fleet.ts";
import type { Bucket, Cloud } from "../../roles/cloud/types.ts";
import { loadConfig, resourceNames, type Config } from "../../roles/config.ts";
import { startRegion, type EmulatedRegion } from "../../infra/sim/region.ts";

/** Settings the contracts assume: 1 s visibility timeout, dead-letter queue after 2 receives. */
const CONTRACT_SETTINGS = { visibilityTimeoutSeconds: 1, maxReceives: 2 } as const;

let deployments = 0;

/** A configuration with a prefix no other test uses, so every cloud starts empty. */
export function freshConfig(overrides: Partial<Config> = {}): Config {
  return loadConfig({}, { prefix: `contract-${process.pid}-${deployments++}`, ...CONTRACT_SETTINGS, ...overrides });
}

const idleMachines: MachineFactory = async () => ({ stop: async () => {} });

export function freshLocalCloud(config: Config, startMachine: MachineFactory = idleMachines): Cloud {
  return localCloud({ ...config, dataDir: mkdtempSync(join(tmpdir(), "facefleet-cloud-")) }, startMachine);
}

export interface AwsTestRegion {
  region: EmulatedRegion;
  stop(): Promise<void>;
}

/**
 * Starts the emulated region (instances run a sleeping process) and puts its settings in this process's environment
 * until `stop`, as a deployment's instance profile and endpoints would be.
 */
export async function startAwsTestRegion(): Promise<AwsTestRegion> {
  const region = await startRegion({ instanceProcess: () => ({ command: ["sleep", "600"] }), killGraceMs: 200 });
  const saved = Object.fromEntries(Object.keys(region.env).map((name) => [name, process.env[name]]));
  Object.assign(process.env, region.env);
  return {
    region,
    async stop() {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      await region.stop();
    },
  };
}

/** Runs `suite` on fresh local buckets and on fresh S3 buckets of an emulated region, each under its own describe. */
export function onLocalAndS3Buckets(subject: string, suite: (makeBucket: () => Promise<Bucket>) => void): void {
  describe(`${subject} on files`, () => {
    suite(freshLocalBucket);
  });
  describe(`${subject} on S3`, () => {
    let aws: AwsTestRegion;
    beforeAll(async () => {
      aws = await startAwsTestRegion();
    });
    afterAll(() => aws?.stop());
    suite(freshS3Bucket);
  });
}

/** A new bucket of a fresh embedded deployment, on files. */
export async function freshLocalBucket(): Promise<Bucket> {
  const config = freshConfig();
  return freshLocalCloud(config).blobs.bucket(resourceNames(config).reportsBucket);
}

/** A new bucket of a fresh deployment in the emulated region (started by startAwsTestRegion), as awsCloud reaches it. */
export async function freshS3Bucket(): Promise<Bucket> {
  const config = freshConfig();
  const name = resourceNames(config).inBucket;
  await new S3Client({ forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: name }));
  return awsCloud(config).blobs.bucket(name);
}
