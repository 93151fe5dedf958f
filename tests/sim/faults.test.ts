// Fault injection in the emulated region: throttling and 5xx answers that the SDK retries with backoff, and that
// surface as the services' own error names when they outlast the retries.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { CreateRoleCommand, GetRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { startRegion, type EmulatedRegion } from "../../infra/sim/region.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

let region: EmulatedRegion;
let ec2: EC2Client;
let s3: S3Client;
let sqs: SQSClient;
let iam: IAMClient;
let queueUrl: string;

beforeAll(async () => {
  region = await startRegion({ instanceProcess: () => undefined });
  ec2 = new EC2Client({ ...region.clientConfig, endpoint: region.endpoints.ec2 });
  s3 = new S3Client({ ...region.clientConfig, endpoint: region.endpoints.s3 });
  sqs = new SQSClient({ ...region.clientConfig, endpoint: region.endpoints.sqs });
  iam = new IAMClient({ ...region.clientConfig, endpoint: region.endpoints.iam });
  await s3.send(new CreateBucketCommand({ Bucket: "faults-bucket" }));
  queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: "faults-queue" }))).QueueUrl!;
  await iam.send(new CreateRoleCommand({ RoleName: "faults-role", AssumeRolePolicyDocument: "{}" }));
});

afterAll(async () => {
  for (const client of [ec2, s3, sqs, iam]) client.destroy();
  await region.stop();
});

/** Two faults, then the third attempt (the SDK's default) gets through. */
const calls = {
  ec2: () => ec2.send(new DescribeInstancesCommand({})),
  s3: () => s3.send(new PutObjectCommand({ Bucket: "faults-bucket", Key: "k", Body: "v" })),
  sqs: () => sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: "job" })),
  iam: () => iam.send(new GetRoleCommand({ RoleName: "faults-role" })),
};

const exhaustedNames = {
  throttle: { ec2: "RequestLimitExceeded", s3: "SlowDown", sqs: "RequestThrottled", iam: "Throttling" },
  "server-error": { ec2: "InternalError", s3: "InternalError", sqs: "InternalError", iam: "ServiceFailureException" },
} as const;

describe.each(["throttle", "server-error"] as const)("%s", (kind) => {
  test.each(["ec2", "s3", "sqs", "iam"] as const)("%s: retried with backoff until it succeeds", async (service) => {
    const faults = region.faults[service];
    const before = faults.injected;
    faults.set({ kind, count: 2 });
    const { $metadata } = await calls[service]();
    expect(faults.injected - before).toBe(2);
    expect($metadata.attempts).toBe(3);
    expect($metadata.totalRetryDelay).toBeGreaterThan(0);
  });

  test.each(["ec2", "s3", "sqs", "iam"] as const)("%s: outlasting the retries gives the service's error", async (service) => {
    region.faults[service].set({ kind });
    try {
      await expect(calls[service]()).rejects.toMatchObject({ name: exhaustedNames[kind][service], $metadata: { attempts: 3 } });
    } finally {
      region.faults[service].clear();
    }
  });
});

test("faults can target chosen operations and a fraction of requests", async () => {
  region.faults.sqs.set({ kind: "throttle", operations: ["ReceiveMessage"], count: 1 });
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: "untouched" }));
  expect(region.faults.sqs.take("SendMessage")).toBeUndefined();
  const { $metadata } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 0 }));
  expect($metadata.attempts).toBe(2);
  region.faults.s3.set({ kind: "server-error", fraction: 0 });
  expect((await s3.send(new GetObjectCommand({ Bucket: "faults-bucket", Key: "k" }))).$metadata.attempts).toBe(1);
  region.faults.s3.clear();
});
