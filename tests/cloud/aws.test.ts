// The AWS implementations, with the real SDK over HTTP against fauxqs: the same contracts as the local ones.
import { afterAll, beforeAll, describe } from "bun:test";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { S3Bucket } from "../../roles/cloud/aws/s3-bucket.ts";
import { SqsQueue } from "../../roles/cloud/aws/sqs-queue.ts";
import { bucketContract } from "./bucket.contract.ts";
import { queueContract } from "./queue.contract.ts";
import { startFauxqsEndpoint, TEST_CLIENT_SETTINGS, type FauxqsEndpoint } from "./aws-endpoint.ts";

let endpoint: FauxqsEndpoint;
let sqs: SQSClient;
let s3: S3Client;
let counter = 0;

beforeAll(async () => {
  endpoint = await startFauxqsEndpoint();
  sqs = new SQSClient({ ...TEST_CLIENT_SETTINGS, endpoint: endpoint.address });
  s3 = new S3Client({ ...TEST_CLIENT_SETTINGS, endpoint: endpoint.address, forcePathStyle: true });
});
afterAll(() => endpoint?.stop());

describe("SQS queue", () => {
  queueContract(async () => {
    const name = `contract-${counter++}`;
    const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
    const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ["QueueArn"] }));
    await sqs.send(
      new CreateQueueCommand({
        QueueName: name,
        Attributes: {
          VisibilityTimeout: "1",
          MaximumMessageSize: "1024",
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: Attributes?.QueueArn, maxReceiveCount: 2 }),
        },
      }),
    );
    return { queue: new SqsQueue(sqs, name), deadLetter: new SqsQueue(sqs, `${name}-dlq`) };
  });
});

describe("S3 bucket", () => {
  bucketContract(async () => {
    const name = `contract-bucket-${counter++}`;
    await s3.send(new CreateBucketCommand({ Bucket: name }));
    return new S3Bucket(s3, name);
  });
});
