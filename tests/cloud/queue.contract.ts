/** The behaviour every JobQueue must have, local or SQS. Each implementation's test file calls this with its factory. */
import { expect, test } from "bun:test";
import { MessageTooLargeError, type JobQueue } from "../../roles/cloud/types.ts";

/** A fresh, empty queue with a 1-second visibility timeout, 1024-byte limit and a dead-letter queue after 2 receives. */
export type QueueFactory = () => Promise<{ queue: JobQueue; deadLetter: JobQueue }>;

export function queueContract(makeQueue: QueueFactory): void {
  test("send, receive, delete", async () => {
    const { queue } = await makeQueue();
    await queue.send("hello");
    const [message] = await queue.receive({ maxMessages: 10, waitSeconds: 1 });
    expect(message).toMatchObject({ body: "hello", receiveCount: 1 });
    await queue.delete(message!.receiptHandle);
    expect(await queue.receive({ maxMessages: 10, waitSeconds: 0 })).toEqual([]);
  });

  test("depth counts visible and in-flight messages", async () => {
    const { queue } = await makeQueue();
    for (const body of ["a", "b", "c"]) await queue.send(body);
    expect(await queue.depth()).toEqual({ visible: 3, inFlight: 0 });
    await queue.receive({ maxMessages: 2, waitSeconds: 0 });
    expect(await queue.depth()).toEqual({ visible: 1, inFlight: 2 });
  });

  test("a message not deleted comes back after its visibility timeout, with its receive count", async () => {
    const { queue } = await makeQueue();
    await queue.send("crashy");
    const [first] = await queue.receive({ maxMessages: 1, waitSeconds: 0, visibilityTimeoutSeconds: 1 });
    expect(await queue.receive({ maxMessages: 1, waitSeconds: 0 })).toEqual([]);
    const [again] = await queue.receive({ maxMessages: 1, waitSeconds: 3 });
    expect(again).toMatchObject({ messageId: first!.messageId, body: "crashy", receiveCount: 2 });
  });

  test("changeVisibility keeps a message hidden", async () => {
    const { queue } = await makeQueue();
    await queue.send("long job");
    const [message] = await queue.receive({ maxMessages: 1, waitSeconds: 0, visibilityTimeoutSeconds: 1 });
    await queue.changeVisibility(message!.receiptHandle, 5);
    expect(await queue.receive({ maxMessages: 1, waitSeconds: 2 })).toEqual([]);
  });

  test("a long poll returns as soon as a message arrives", async () => {
    const { queue } = await makeQueue();
    const started = performance.now();
    const receiving = queue.receive({ maxMessages: 1, waitSeconds: 10 });
    await Bun.sleep(200);
    await queue.send("wake up");
    const [message] = await receiving;
    expect(message?.body).toBe("wake up");
    expect(performance.now() - started).toBeLessThan(3000);
  });

  test("bodies over 1024 bytes are refused; 1024 bytes pass", async () => {
    const { queue } = await makeQueue();
    await expect(queue.send("x".repeat(1025))).rejects.toBeInstanceOf(MessageTooLargeError);
    await queue.send("x".repeat(1024));
    expect((await queue.receive({ maxMessages: 1, waitSeconds: 1 }))[0]?.body).toHaveLength(1024);
  });

  test("a message received too often moves to the dead-letter queue", async () => {
    const { queue, deadLetter } = await makeQueue();
    await queue.send("poison");
    for (let i = 0; i < 2; i++) expect(await queue.receive({ maxMessages: 1, waitSeconds: 3, visibilityTimeoutSeconds: 1 })).toHaveLength(1);
    await Bun.sleep(1100);
    expect(await queue.receive({ maxMessages: 1, waitSeconds: 0 })).toEqual([]);
    const [dead] = await deadLetter.receive({ maxMessages: 1, waitSeconds: 2 });
    expect(dead?.body).toBe("poison");
  });
}
