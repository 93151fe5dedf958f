/** A queue on SQS. The queue URL is resolved once and cached. */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { MessageTooLargeError, type JobQueue, type QueueDepth, type QueueService, type ReceivedMessage } from "../types.ts";
import { MAX_MESSAGE_BYTES } from "../local/memory-queue.ts";

export class SqsQueue implements JobQueue {
  private url: Promise<string> | undefined;

  constructor(
    private readonly client: SQSClient,
    readonly name: string,
  ) {}

  async send(body: string): Promise<string> {
    const size = Buffer.byteLength(body);
    if (size > MAX_MESSAGE_BYTES) throw new MessageTooLargeError(size, MAX_MESSAGE_BYTES);
    const result = await this.client.send(new SendMessageCommand({ QueueUrl: await this.queueUrl(), MessageBody: body }));
    return result.MessageId ?? "";
  }

  async receive(options: { maxMessages: number; waitSeconds: number; visibilityTimeoutSeconds?: number; signal?: AbortSignal }): Promise<ReceivedMessage[]> {
    const result = await this.client.send(
      new ReceiveMessageCommand({
        QueueUrl: await this.queueUrl(),
        MaxNumberOfMessages: Math.max(1, Math.min(10, options.maxMessages)),
        WaitTimeSeconds: options.waitSeconds,
        VisibilityTimeout: options.visibilityTimeoutSeconds,
        MessageSystemAttributeNames: ["ApproximateReceiveCount"],
      }),
      { abortSignal: options.signal },
    );
    return (result.Messages ?? []).map((message) => ({
      messageId: message.MessageId ?? "",
      body: message.Body ?? "",
      receiptHandle: message.ReceiptHandle ?? "",
      receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 1),
    }));
  }

  async delete(receiptHandle: string): Promise<void> {
    await this.client.send(new DeleteMessageCommand({ QueueUrl: await this.queueUrl(), ReceiptHandle: receiptHandle }));
  }

  async changeVisibility(receiptHandle: string, seconds: number): Promise<void> {
    await this.client.send(new ChangeMessageVisibilityCommand({ QueueUrl: await this.queueUrl(), ReceiptHandle: receiptHandle, VisibilityTimeout: seconds }));
  }

  async depth(): Promise<QueueDepth> {
    const { Attributes } = await this.client.send(
      new GetQueueAttributesCommand({
        QueueUrl: await this.queueUrl(),
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    return {
      visible: Number(Attributes?.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
    };
  }

  private queueUrl(): Promise<string> {
    this.url ??= this.client.send(new GetQueueUrlCommand({ QueueName: this.name })).then((r) => {
      if (!r.QueueUrl) throw new Error(`queue ${this.name} has no URL`);
      return r.QueueUrl;
    });
    this.url.catch(() => (this.url = undefined));
    return this.url;
  }
}

export class SqsQueueService implements QueueService {
  private readonly queues = new Map<string, SqsQueue>();

  constructor(private readonly client: SQSClient) {}

  queue(name: string): JobQueue {
    let queue = this.queues.get(name);
    if (!queue) this.queues.set(name, (queue = new SqsQueue(this.client, name)));
    return queue;
  }
}
