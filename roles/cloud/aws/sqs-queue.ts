/**
 * A queue on SQS. The queue URL is resolved once and cached. The body size limit is the queue's own
 * MaximumMessageSize (1024 for the request queue infra creates); SQS's refusal becomes a MessageTooLargeError.
 */
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

/** SQS's longest long poll. */
const MAX_WAIT_SECONDS = 20;
/** How SQS words its InvalidParameterValue refusal of a body over the queue's MaximumMessageSize. */
const TOO_LONG = /Message must be shorter than (\d+) bytes/;

class SqsQueue implements JobQueue {
  private url: Promise<string> | undefined;

  constructor(
    private readonly client: SQSClient,
    readonly name: string,
  ) {}

  async send(body: string): Promise<string> {
    const queueUrl = await this.queueUrl();
    try {
      const result = await this.client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
      return result.MessageId ?? "";
    } catch (error) {
      const limit = error instanceof Error ? TOO_LONG.exec(error.message)?.[1] : undefined;
      if (limit) throw new MessageTooLargeError(Buffer.byteLength(body), Number(limit));
      throw error;
    }
  }

  async receive(options: { maxMessages: number; waitSeconds: number; visibilityTimeoutSeconds?: number; signal?: AbortSignal }): Promise<ReceivedMessage[]> {
    const result = await this.client.send(
      new ReceiveMessageCommand({
        QueueUrl: await this.queueUrl(),
        MaxNumberOfMessages: Math.max(1, Math.min(10, options.maxMessages)),
        WaitTimeSeconds: Math.min(MAX_WAIT_SECONDS, Math.max(0, Math.ceil(options.waitSeconds))),
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
