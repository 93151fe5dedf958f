// The cap on bodies read at once, in all and per client: who reads next, who waits and who is turned away (a pure
// decision, as a table), and its loop: slots handed on in order, a bounded wait, a bounded queue shared out by client.
import { describe, expect, test } from "bun:test";
import { nextGrant, onArrival, type Arrival, type SlotLimits } from "../../roles/web/slot-policy.ts";
import { UploadSlots, type SlotAdmission } from "../../roles/web/upload-slots.ts";

const LIMITS: SlotLimits = { capacity: 4, perClient: 2, maxQueued: 4 };
const reading = (counts: Record<string, number>) => ({ reading: new Map(Object.entries(counts)), readingTotal: Object.values(counts).reduce((a, b) => a + b, 0) });

describe("who reads a body next (slot-policy)", () => {
  const arrivals: [string, Record<string, number>, string[], string, Arrival][] = [
    ["a free slot, the client under its cap", { a: 1 }, [], "a", { kind: "read" }],
    ["a free slot, the client at its cap: it waits", { a: 2 }, [], "a", { kind: "wait" }],
    ["a free slot, another client at its cap and waiting: the newcomer reads", { a: 2 }, ["a", "a"], "b", { kind: "read" }],
    ["no free slot: wait", { a: 2, b: 2 }, [], "c", { kind: "wait" }],
    ["queue full of one client's requests: a newcomer takes its newest waiter's place", { a: 2, b: 2 }, ["a", "b", "a", "a"], "c", { kind: "wait", evict: 3 }],
    ["queue full, the newcomer has one waiting and the hog three: evict", { a: 2, b: 2 }, ["a", "a", "a", "c"], "c", { kind: "wait", evict: 2 }],
    ["queue full, shares within one of each other: the hog itself is refused", { a: 2, b: 2 }, ["a", "a", "b", "b"], "a", { kind: "refuse", reason: "over_share" }],
    ["queue full, shared evenly: a client with one waiting is refused over its share", { a: 2, b: 2 }, ["a", "b", "c", "d"], "d", { kind: "refuse", reason: "over_share" }],
    ["queue full, two waiting each: a newcomer takes the newest place of the first of them", { a: 2, b: 2 }, ["a", "a", "b", "b"], "c", { kind: "wait", evict: 1 }],
    ["queue full, one each: a client reading, nothing waiting: over its share", { a: 2, b: 2 }, ["c", "d", "e", "f"], "a", { kind: "refuse", reason: "over_share" }],
    ["queue full, one each: a stranger: busy", { a: 2, b: 2 }, ["c", "d", "e", "f"], "g", { kind: "refuse", reason: "busy" }],
  ];
  for (const [what, counts, queue, client, expected] of arrivals) {
    test(`arrival, ${what}`, () => {
      expect(onArrival({ ...reading(counts), queue }, LIMITS, client)).toEqual(expected);
    });
  }

  const grants: [string, Record<string, number>, string[], number | undefined][] = [
    ["no free slot", { a: 2, b: 2 }, ["c"], undefined],
    ["the first waiter under its cap", { a: 2, b: 1 }, ["a", "a", "b", "c"], 2],
    ["every waiter at its cap", { a: 2, b: 1 }, ["a", "a"], undefined],
    ["nobody waiting", { a: 1 }, [], undefined],
  ];
  for (const [what, counts, queue, expected] of grants) {
    test(`grant, ${what}`, () => {
      expect(nextGrant({ ...reading(counts), queue }, LIMITS)).toBe(expected);
    });
  }
});

const released = (admission: SlotAdmission) => {
  if (!("release" in admission)) throw new Error(`refused: ${admission.refused}`);
  return admission.release;
};

describe("upload slots", () => {
  test("at most `capacity` at once; a released slot goes to the first waiter, and a second release changes nothing", async () => {
    const slots = new UploadSlots({ capacity: 2, perClient: 2, maxQueued: 10 }, 1000);
    const first = released(await slots.acquire("x"));
    await slots.acquire("x");
    const order: string[] = [];
    const waiters = ["a", "b"].map((name) => slots.acquire(name).then((admission) => (order.push(name), released(admission))));
    expect([slots.reading, slots.queued]).toEqual([2, 2]);
    first();
    first();
    const a = await waiters[0]!;
    expect(order).toEqual(["a"]);
    expect([slots.reading, slots.queued]).toEqual([2, 1]);
    a();
    await waiters[1];
    expect(order).toEqual(["a", "b"]);
    expect([slots.reading, slots.queued]).toEqual([2, 0]);
  });

  test("a client at its cap waits, another client overtakes it, and its waiter reads once its own slot is released", async () => {
    const slots = new UploadSlots({ capacity: 4, perClient: 1, maxQueued: 10 }, 1000);
    const held = released(await slots.acquire("a"));
    let second: SlotAdmission | undefined;
    const waiting = slots.acquire("a").then((admission) => (second = admission));
    expect(await slots.acquire("b")).toEqual({ release: expect.any(Function) });
    expect([slots.reading, slots.queued, second]).toEqual([2, 1, undefined]);
    held();
    await waiting;
    expect(second).toEqual({ release: expect.any(Function) });
    expect([slots.reading, slots.queued]).toEqual([2, 0]);
  });

  test("no slot within the wait: busy, and the waiter leaves the queue", async () => {
    const slots = new UploadSlots({ capacity: 1, perClient: 1, maxQueued: 10 }, 50);
    await slots.acquire("a");
    const started = performance.now();
    expect(await slots.acquire("b")).toEqual({ refused: "busy" });
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect(slots.queued).toBe(0);
  });

  test("a full queue: a stranger is busy at once; a full queue of one client's: its newest waiter gives its place to another client", async () => {
    const slots = new UploadSlots({ capacity: 1, perClient: 1, maxQueued: 2 }, 10_000);
    const release = released(await slots.acquire("a"));
    const waiters = [slots.acquire("a"), slots.acquire("a")];
    const started = performance.now();
    const newcomer = slots.acquire("b");
    expect(await waiters[1]).toEqual({ refused: "over_share" });
    expect(performance.now() - started).toBeLessThan(50);
    expect(await slots.acquire("a")).toEqual({ refused: "over_share" });
    release();
    released(await waiters[0]!)();
    expect(await newcomer).toEqual({ release: expect.any(Function) });
    const full = new UploadSlots({ capacity: 1, perClient: 1, maxQueued: 1 }, 10_000);
    await full.acquire("a");
    void full.acquire("b");
    expect(await full.acquire("c")).toEqual({ refused: "busy" });
  });
});
