// The queue contract against the in-process queue and against SQS (fauxqs) through awsCloud(config).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, ListQueuesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { awsCloud } from "../../roles/cloud/index.ts";
import { resourceNames, type Config } from "../../roles/config.ts";
import { freshConfig, freshLocalCloud, startAwsTestRegion, type AwsTestRegion } from "./clouds.ts";
import { queueContract } from "./queue.contract.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

describe("local queue", () => {
  queueContract(async () => {
    const config = freshConfig();
    const { queues } = freshLocalCloud(config);
    const names = resourceNames(config);
    return { queue: queues.queue(names.reqQueue), deadLetter: queues.queue(names.deadLetterQueue) };
  });
});

describe("SQS queue", () => {
  let aws: AwsTestRegion;
  beforeAll(async () => {
    aws = await startAwsTestRegion();
  });
  afterAll(() => aws?.stop());

  /** The request queue and its dead-letter queue as infra creates them: 1024-byte limit, redrive after maxReceives. */
  async function createQueues(config: Config): Promise<void> {
    const sqs = new SQSClient({});
    const names = resourceNames(config);
    const dlq = await sqs.send(new CreateQueueCommand({ QueueName: names.deadLetterQueue }));
    const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ["QueueArn"] }));
    await sqs.send(
      new CreateQueueCommand({
        QueueName: names.reqQueue,
        Attributes: {
          VisibilityTimeout: String(config.visibilityTimeoutSeconds),
          MaximumMessageSize: "1024",
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: Attributes?.QueueArn, maxReceiveCount: config.maxReceives }),
        },
      }),
    );
  }

  queueContract(async () => {
    const config = freshConfig();
    await createQueues(config);
    const { queues } = awsCloud(config);
    const names = resourceNames(config);
    return { queue: queues.queue(names.reqQueue), deadLetter: queues.queue(names.deadLetterQueue) };
  });

  test("SQS throttling and server errors are retried with backoff; nothing is lost or doubled", async () => {
    const config = freshConfig();
    await createQueues(config);
    const queue = awsCloud(config).queues.queue(resourceNames(config).reqQueue);
    await queue.send("warm up the cached queue URL");
    const faults = aws.region.faults.sqs;
    const before = faults.injected;
    faults.set({ kind: "throttle", count: 2, operations: ["SendMessage"] });
    await queue.send("through throttling");
    faults.set({ kind: "server-error", count: 2, operations: ["ReceiveMessage", "GetQueueAttributes"] });
    expect(await queue.depth()).toEqual({ visible: 2, inFlight: 0 });
    const received = await queue.receive({ maxMessages: 10, waitSeconds: 1 });
    faults.clear();
    expect(faults.injected - before).toBe(4);
    expect(received.map((m) => m.body).sort()).toEqual(["through throttling", "warm up the cached queue URL"]);
  });

  test("the region can make SQS's approximate counts lag and read low, as AWS documents they may for up to a minute", async () => {
    const config = freshConfig();
    await createQueues(config);
    const queue = awsCloud(config).queues.queue(resourceNames(config).reqQueue);
    await queue.send("one");
    const counts = aws.region.s3sqs.sqs;
    try {
      counts.approximateCounts = { lagMs: 300, lowFraction: 0 };
      expect(await queue.depth()).toEqual({ visible: 0, inFlight: 0 });
      await Bun.sleep(350);
      await queue.send("two");
      expect(await queue.depth()).toEqual({ visible: 1, inFlight: 0 });
      counts.approximateCounts = { lagMs: 0, lowFraction: 1 };
      expect(await queue.depth()).toEqual({ visible: 0, inFlight: 0 });
      counts.approximateCounts = { lagMs: 0, lowFraction: 0 };
      expect(await queue.depth()).toEqual({ visible: 2, inFlight: 0 });
    } finally {
      counts.approximateCounts = { lagMs: 0, lowFraction: 0 };
    }
  });

  test("the region can keep listing a deleted queue for a while, as ListQueues does on AWS for about 60 s", async () => {
    const config = freshConfig();
    await createQueues(config);
    const sqs = new SQSClient({});
    const name = resourceNames(config).reqQueue;
    const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    const listed = async () => (await sqs.send(new ListQueuesCommand({ QueueNamePrefix: config.prefix }))).QueueUrls ?? [];
    aws.region.s3sqs.sqs.deletedQueueListedMs = 300;
    try {
      await sqs.send(new DeleteQueueCommand({ QueueUrl }));
      expect(await listed()).toContain(QueueUrl!);
      await Bun.sleep(300);
      expect(await listed()).not.toContain(QueueUrl!);
    } finally {
      aws.region.s3sqs.sqs.deletedQueueListedMs = 0;
    }
  });
});
