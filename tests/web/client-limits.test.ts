// The pure pieces of fair uploads, as tables: whom a request is counted under (its address), the slowest a body may
// arrive, and the classic route's per-client token bucket with a clock the test passes.
import { describe, expect, test } from "bun:test";
import { behindPaceAt, BODY_PACE_ALLOWANCE_BYTES } from "../../roles/web/body-pace.ts";
import { clientKey } from "../../roles/web/client-address.ts";
import { ClientRateLimit } from "../../roles/web/client-rate.ts";

describe("the client an address counts as", () => {
  const cases: [string, string][] = [
    ["203.0.113.9", "203.0.113.9"],
    [" 203.0.113.9 ", "203.0.113.9"],
    ["::ffff:203.0.113.9", "203.0.113.9"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"],
    ["2001:0DB8:0001:0002::7", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["[2001:db8:1:2::9]", "2001:db8:1:2::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
  ];
  for (const [address, key] of cases) test(`${address} -> ${key}`, () => expect(clientKey(address)).toBe(key));

  test("a garbage forwarded address is bounded", () => {
    expect(clientKey("x".repeat(1000)).length).toBe(64);
  });
});

describe("the slowest a body may arrive: 64 KiB/s after 1 s", () => {
  const pace = { minBytesPerSecond: 64 * 1024, graceMs: 1000 };
  const cases: [string, number, number][] = [
    ["nothing yet: the grace and a second for the allowance", 0, 2000],
    ["a small body of 32 KiB: half a second more", 32 * 1024, 2500],
    ["1 MiB: 18 s (1 s of grace, 17 s for 1 MiB and the allowance)", 1024 * 1024, 18_000],
    ["a body the allowance behind the rate, at 3 s", 2 * 64 * 1024 - BODY_PACE_ALLOWANCE_BYTES, 3000],
  ];
  for (const [what, received, at] of cases) test(`${what}`, () => expect(behindPaceAt(received, pace)).toBe(at));

  test("no minimum: never behind", () => {
    expect(behindPaceAt(0, { minBytesPerSecond: 0, graceMs: 1000 })).toBe(Infinity);
  });
});

describe("the classic route's rate limit per client: 2 a second", () => {
  test("a burst of 2, then one more every half second; another client has its own bucket", () => {
    const limit = new ClientRateLimit(2);
    const steps: [string, number, number][] = [
      ["a", 0, 0],
      ["a", 10, 0],
      ["a", 20, 480],
      ["b", 20, 0],
      ["a", 520, 0],
      ["a", 530, 470],
      ["a", 5000, 0],
      ["a", 5001, 0],
      ["a", 5002, 498],
    ];
    expect(steps.map(([client, now]) => limit.take(client, now))).toEqual(steps.map(([, , wait]) => wait));
  });

  test("below one a second: a burst of one, and the wait until the next", () => {
    const limit = new ClientRateLimit(0.1);
    expect([limit.take("a", 0), limit.take("a", 1000), limit.take("a", 10_000)]).toEqual([0, 9000, 0]);
  });

  test("a stranger rotating addresses: the buckets kept stay bounded, the least recently seen dropped first", () => {
    const limit = new ClientRateLimit(1, 100);
    limit.take("regular", 0);
    for (let i = 0; i < 10_000; i++) {
      limit.take(`10.0.${i >> 8}.${i & 255}`, i);
      if (i % 50 === 0) limit.take("regular", i);
    }
    expect(limit.size).toBe(100);
    // The regular client, seen lately, is still remembered: its bucket is empty right after its last request.
    expect(limit.take("regular", 9951)).toBeGreaterThan(0);
  });
});
