// The bucket contract against files on disk and against S3 (fauxqs) through awsCloud(config).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileBucket } from "../../roles/cloud/local/file-bucket.ts";
import { resourceNames } from "../../roles/config.ts";
import { bucketContract } from "./bucket.contract.ts";
import { freshConfig, freshLocalCloud, freshS3Bucket, startAwsTestRegion, type AwsTestRegion } from "./clouds.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

describe("local bucket", () => {
  bucketContract(async () => {
    const config = freshConfig();
    return freshLocalCloud(config).blobs.bucket(resourceNames(config).inBucket);
  });

  test("nothing is written outside the bucket's folder, whatever the key", async () => {
    const root = mkdtempSync(join(tmpdir(), "facefleet-bucket-"));
    const bucket = new FileBucket(join(root, "data"), "b");
    for (const key of ["/escaped", "%2e%2e/%2e%2e/escaped", "...", "b.metadata", "/absolute"]) await bucket.put(key, "x", { metadata: { k: "v" } });
    expect(existsSync(join(root, "escaped"))).toBe(false);
    expect(readdirSync(root)).toEqual(["data"]);
    expect(readdirSync(join(root, "data")).sort()).toEqual(["b", "b.metadata"]);
    expect(readdirSync(join(root, "data", "b"))).toHaveLength(5);
  });
});

describe("S3 bucket", () => {
  let aws: AwsTestRegion;
  beforeAll(async () => {
    aws = await startAwsTestRegion();
  });
  afterAll(() => aws?.stop());

  bucketContract(freshS3Bucket);

  test("S3 throttling and server errors are retried with backoff", async () => {
    const bucket = await freshS3Bucket();
    const faults = aws.region.faults.s3;
    const before = faults.injected;
    faults.set({ kind: "throttle", count: 2, operations: ["PUT"] });
    await bucket.put("key", "survived");
    faults.set({ kind: "server-error", count: 2, operations: ["GET"] });
    expect(new TextDecoder().decode(await bucket.get("key"))).toBe("survived");
    faults.clear();
    expect(faults.injected - before).toBe(4);
  });

  test("a fault in the front's check of a conditional put fails the put as a whole (retried), never as a failed condition", async () => {
    const bucket = await freshS3Bucket();
    const version = await bucket.putIf("lease", "first", undefined);
    const faults = aws.region.faults.s3;
    for (const kind of ["throttle", "server-error"] as const) {
      faults.set({ kind, count: 2, operations: ["HEAD"] });
      const replaced = await bucket.putIf("lease", kind, (await bucket.read("lease"))!.version);
      expect(replaced).toBeString();
    }
    faults.clear();
    expect(version).toBeString();
    expect(new TextDecoder().decode(await bucket.get("lease"))).toBe("server-error");
  });
});
