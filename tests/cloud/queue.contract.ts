/** The behaviour every JobQueue must have, local or SQS. Each implementation's suite calls this with its factory. */
import { expect, test } from "bun:test";
import { MessageTooLargeError, type JobQueue } from "../../roles/cloud/types.ts";

/** A fresh, empty queue with a 1-second visibility timeout, 1024-byte limit and a dead-letter queue after 2 receives. */
export type QueueFactory = () => Promise<{ queue: JobQueue; deadLetter: JobQueue }>;

export function queueContract(makeQueue: QueueFactory): void {
  test("send, receive, delete", async () => {
    const { queue } = await makeQueue();
    const messageId = await queue.send("hello");
    const [message] = await queue.receive({ maxMessages: 10, waitSeconds: 1 });
    expect(message).toMatchObject({ messageId, body: "hello", receiveCount: 1 });
    await queue.delete(message!.receiptHandle);
    expect(await queue.depth()).toEqual({ visible: 0, inFlight: 0 });
    await Bun.sleep(1100);
    expect(await queue.receive({ maxMessages: 10, waitSeconds: 0 })).toEqual([]);
  });

  test("receive hands out at most maxMessages, each message to one receiver", async () => {
    const { queue } = await makeQueue();
    for (const body of ["a", "b", "c"]) await queue.send(body);
    const first = await queue.receive({ maxMessages: 2, waitSeconds: 0 });
    expect(first).toHaveLength(2);
    const second = await queue.receive({ maxMessages: 10, waitSeconds: 1 });
    expect([...first, ...second].map((m) => m.body).sort()).toEqual(["a", "b", "c"]);
  });

  test("depth counts visible and in-flight messages", async () => {
    const { queue } = await makeQueue();
    for (const body of ["a", "b", "c"]) await queue.send(body);
    expect(await queue.depth()).toEqual({ visible: 3, inFlight: 0 });
    const received = await queue.receive({ maxMessages: 2, waitSeconds: 0 });
    expect(received).toHaveLength(2);
    expect(await queue.depth()).toEqual({ visible: 1, inFlight: 2 });
    await queue.delete(received[0]!.receiptHandle);
    expect(await queue.depth()).toEqual({ visible: 1, inFlight: 1 });
  });

  test("a message not deleted (its consumer crashed) comes back after its visibility timeout, with its receive count", async () => {
    const { queue } = await makeQueue();
    await queue.send("crashy");
    const [first] = await queue.receive({ maxMessages: 1, waitSeconds: 0, visibilityTimeoutSeconds: 1 });
    expect(await queue.receive({ maxMessages: 1, waitSeconds: 0 })).toEqual([]);
    const [again] = await queue.receive({ maxMessages: 1, waitSeconds: 3 });
    expect(again).toMatchObject({ messageId: first!.messageId, body: "crashy", receiveCount: 2 });
    expect(again!.receiptHandle).not.toBe(first!.receiptHandle);
    await queue.delete(again!.receiptHandle);
    expect(await queue.depth()).toEqual({ visible: 0, inFlight: 0 });
  });

  test("changeVisibility keeps a message hidden longer, or releases it at once", async () => {
    const { queue } = await makeQueue();
    await queue.send("long job");
    const [message] = await queue.receive({ maxMessages: 1, waitSeconds: 0, visibilityTimeoutSeconds: 1 });
    await queue.changeVisibility(message!.receiptHandle, 5);
    expect(await queue.receive({ maxMessages: 1, waitSeconds: 2 })).toEqual([]);
    await queue.changeVisibility(message!.receiptHandle, 0);
    const [released] = await queue.receive({ maxMessages: 1, waitSeconds: 1 });
    expect(released).toMatchObject({ body: "long job", receiveCount: 2 });
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

  test("a long poll on an empty queue waits its time, then answers empty", async () => {
    const { queue } = await makeQueue();
    const started = performance.now();
    expect(await queue.receive({ maxMessages: 1, waitSeconds: 1 })).toEqual([]);
    expect(performance.now() - started).toBeGreaterThan(900);
  });

  // On SQS the server does not see the client leave: its poll may still take the next message, which then comes back
  // after the visibility timeout like any unacknowledged one. Lost it never is.
  test("an aborted long poll ends at once (empty or rejected); a message sent after it is not lost", async () => {
    const { queue } = await makeQueue();
    const abort = new AbortController();
    const started = performance.now();
    const receiving = queue.receive({ maxMessages: 1, waitSeconds: 10, signal: abort.signal }).catch(() => []);
    await Bun.sleep(100);
    abort.abort();
    expect(await receiving).toEqual([]);
    expect(performance.now() - started).toBeLessThan(2000);
    await queue.send("after the abort");
    const [message] = await queue.receive({ maxMessages: 1, waitSeconds: 3 });
    expect(message?.body).toBe("after the abort");
    expect(message!.receiveCount).toBeLessThanOrEqual(2);
  });

  test("bodies over 1024 bytes are refused with MessageTooLargeError; 1024 bytes pass", async () => {
    const { queue } = await makeQueue();
    await expect(queue.send("x".repeat(1025))).rejects.toBeInstanceOf(MessageTooLargeError);
    await expect(queue.send("é".repeat(513))).rejects.toBeInstanceOf(MessageTooLargeError);
    await queue.send("x".repeat(1024));
    expect((await queue.receive({ maxMessages: 1, waitSeconds: 1 }))[0]?.body).toHaveLength(1024);
    expect(await queue.depth()).toEqual({ visible: 0, inFlight: 1 });
  });

  test("a message received more than maxReceives times moves to the dead-letter queue", async () => {
    const { queue, deadLetter } = await makeQueue();
    const messageId = await queue.send("poison");
    for (let receive = 1; receive <= 2; receive++) {
      const [message] = await queue.receive({ maxMessages: 1, waitSeconds: 3, visibilityTimeoutSeconds: 1 });
      expect(message?.receiveCount).toBe(receive);
    }
    await Bun.sleep(1100);
    expect(await queue.receive({ maxMessages: 1, waitSeconds: 0 })).toEqual([]);
    const [dead] = await deadLetter.receive({ maxMessages: 1, waitSeconds: 2 });
    expect(dead).toMatchObject({ messageId, body: "poison" });
    expect(dead!.receiveCount).toBeGreaterThan(2);
    expect(await queue.depth()).toEqual({ visible: 0, inFlight: 0 });
  });
}
