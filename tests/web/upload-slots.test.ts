// The cap on bodies read at once: slots handed on first come first served, a bounded wait, a bounded queue.
import { describe, expect, test } from "bun:test";
import { UploadSlots } from "../../roles/web/upload-slots.ts";

describe("upload slots", () => {
  test("at most `capacity` at once; a released slot goes to the first waiter, and a second release changes nothing", async () => {
    const slots = new UploadSlots(2, 1000, 10);
    const first = (await slots.acquire())!;
    await slots.acquire();
    const order: string[] = [];
    const waiters = ["a", "b"].map((name) => slots.acquire().then((release) => (order.push(name), release)));
    expect([slots.reading, slots.queued]).toEqual([2, 2]);
    first();
    first();
    const a = await waiters[0]!;
    expect(order).toEqual(["a"]);
    expect([slots.reading, slots.queued]).toEqual([2, 1]);
    a!();
    await waiters[1];
    expect(order).toEqual(["a", "b"]);
    expect([slots.reading, slots.queued]).toEqual([2, 0]);
  });

  test("no slot within the wait: undefined, and the waiter leaves the queue", async () => {
    const slots = new UploadSlots(1, 50, 10);
    await slots.acquire();
    const started = performance.now();
    expect(await slots.acquire()).toBeUndefined();
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect(slots.queued).toBe(0);
  });

  test("a full queue: undefined at once", async () => {
    const slots = new UploadSlots(1, 10_000, 1);
    const release = (await slots.acquire())!;
    const waiting = slots.acquire();
    const started = performance.now();
    expect(await slots.acquire()).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(50);
    release();
    expect(await waiting).toBeFunction();
  });
});
