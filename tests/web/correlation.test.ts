import { describe, expect, test } from "bun:test";
import { PendingReplies, ReplyTimeoutError } from "../../roles/web/correlation.ts";

describe("PendingReplies", () => {
  test("each reply reaches the request that waits for it, whatever the order", async () => {
    const pending = new PendingReplies<string>();
    const ids = Array.from({ length: 100 }, (_, i) => `job-${i}`);
    const waits = ids.map((id) => pending.wait(id, 1000));
    for (const id of [...ids].reverse()) expect(pending.deliver(id, `reply-for-${id}`)).toBe("delivered");
    expect(await Promise.all(waits)).toEqual(ids.map((id) => `reply-for-${id}`));
    expect(pending.size).toBe(0);
  });

  test("a second reply for the same job is a duplicate and changes nothing", async () => {
    const pending = new PendingReplies<string>();
    const wait = pending.wait("a", 1000);
    expect(pending.deliver("a", "first")).toBe("delivered");
    expect(pending.deliver("a", "second")).toBe("duplicate");
    expect(await wait).toBe("first");
  });

  test("a reply nobody waits for is unknown", () => {
    expect(new PendingReplies<string>().deliver("nobody", "x")).toBe("unknown");
  });

  test("waiters expire at their deadline with a timeout error, and a late reply is a duplicate", async () => {
    const pending = new PendingReplies<string>();
    const early = pending.wait("early", 100);
    const late = pending.wait("late", 200);
    expect(pending.expire(99)).toEqual([]);
    expect(pending.expire(150)).toEqual(["early"]);
    await expect(early).rejects.toBeInstanceOf(ReplyTimeoutError);
    expect(pending.deliver("early", "too late")).toBe("duplicate");
    expect(pending.deliver("late", "on time")).toBe("delivered");
    expect(await late).toBe("on time");
  });

  test("a job id cannot be waited on twice", () => {
    const pending = new PendingReplies<string>();
    pending.wait("x", 10).catch(() => {});
    expect(() => pending.wait("x", 10)).toThrow();
  });

  test("cancel withdraws one waiter with the given error", async () => {
    const pending = new PendingReplies<string>();
    const wait = pending.wait("x", 1000);
    pending.cancel("x", new Error("send failed"));
    await expect(wait).rejects.toThrow("send failed");
    expect(pending.size).toBe(0);
  });

  test("settled memory is bounded", () => {
    const pending = new PendingReplies<string>(2);
    for (const id of ["a", "b", "c"]) {
      pending.wait(id, 1000).catch(() => {});
      pending.deliver(id, id);
    }
    expect(pending.deliver("a", "again")).toBe("unknown");
    expect(pending.deliver("c", "again")).toBe("duplicate");
  });
});
