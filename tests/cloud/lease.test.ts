// The lease on files and on S3 (fauxqs, conditional puts through the SDK), with the test's clock.
import { expect, setDefaultTimeout, test } from "bun:test";
import { Lease } from "../../roles/cloud/lease.ts";
import type { Bucket } from "../../roles/cloud/types.ts";
import { onLocalAndS3Buckets } from "./clouds.ts";

setDefaultTimeout(30_000);

const TERM_MS = 15_000;

function leaseContract(makeBucket: () => Promise<Bucket>): void {
  const leases = async () => {
    const bucket = await makeBucket();
    const clock = { now: 0 };
    const lease = (holder: string) => new Lease({ bucket, key: "leases/controller", holder, termMs: TERM_MS, now: () => clock.now });
    return { bucket, clock, lease };
  };

  test("one holder at a time; a holder that stops renewing is replaced once a term has passed unrenewed", async () => {
    const { clock, lease } = await leases();
    const first = lease("first");
    const second = lease("second");
    expect(await first.tryAcquire()).toEqual({ held: true });
    expect(first.holds()).toBe(true);
    expect(await second.tryAcquire()).toMatchObject({ held: false, holder: "first", renewedSinceSeen: false, freeInMs: TERM_MS });
    clock.now += 5_000;
    expect(await first.tryAcquire()).toEqual({ held: true });
    expect(await second.tryAcquire()).toMatchObject({ held: false, renewedSinceSeen: true, freeInMs: TERM_MS });
    // The first dies here: no more renewals.
    clock.now += TERM_MS - 1;
    expect(await second.tryAcquire()).toMatchObject({ held: false, freeInMs: 1 });
    expect(first.holds()).toBe(true);
    clock.now += 1;
    expect(first.holds()).toBe(false);
    expect(await second.tryAcquire()).toEqual({ held: true });
    expect(await first.tryAcquire()).toMatchObject({ held: false, holder: "second" });
  });

  test("a holder that stops releases the lease: the next takes it at once", async () => {
    const { lease } = await leases();
    const first = lease("first");
    const second = lease("second");
    await first.tryAcquire();
    await first.stop();
    expect(first.holds()).toBe(false);
    expect(await second.tryAcquire()).toEqual({ held: true });
  });

  test("of contenders racing for a free lease, exactly one takes it", async () => {
    const { lease } = await leases();
    const contenders = Array.from({ length: 6 }, (_, index) => lease(`contender-${index}`));
    const attempts = await Promise.all(contenders.map((contender) => contender.tryAcquire()));
    expect(attempts.filter((attempt) => attempt.held)).toHaveLength(1);
    expect(contenders.filter((contender) => contender.holds())).toHaveLength(1);
  });

  test("a renewal that was applied but answered as a failed condition (the SDK's retry of a lost answer) still holds", async () => {
    const { bucket, clock } = await leases();
    const lostAnswers: Bucket = Object.assign(Object.create(bucket) as Bucket, {
      putIf: async (...args: Parameters<Bucket["putIf"]>) => (await bucket.putIf(...args), undefined),
    });
    const lease = new Lease({ bucket: lostAnswers, key: "leases/web", holder: "first", termMs: TERM_MS, now: () => clock.now });
    expect(await lease.tryAcquire()).toEqual({ held: true });
    clock.now += 5_000;
    expect(await lease.tryAcquire()).toEqual({ held: true });
    expect(await new Lease({ bucket, key: "leases/web", holder: "second", termMs: TERM_MS, now: () => clock.now }).tryAcquire()).toMatchObject({ held: false, holder: "first" });
  });

  test("a lease object that is not a lease record does not block anyone", async () => {
    const { bucket, lease } = await leases();
    await bucket.put("leases/controller", "not json");
    expect(await lease("first").tryAcquire()).toEqual({ held: true });
  });
}

onLocalAndS3Buckets("lease", leaseContract);
