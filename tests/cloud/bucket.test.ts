// The bucket contract against files on disk and against S3 (fauxqs) through awsCloud(config).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localCloud } from "../../roles/cloud/index.ts";
import { FileBlobStore, FileBucket } from "../../roles/cloud/local/file-bucket.ts";
import { resourceNames } from "../../roles/config.ts";
import { EMBEDDING_EXPIRY_DAYS, EMBEDDING_KEY_PREFIX, GALLERY_MANIFEST_KEY } from "../../roles/deployment.ts";
import { waitFor } from "../support/waiting.ts";
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

describe("local bucket expiry (the lifecycle rule of infra/plan.ts, which fauxqs stores but does not apply)", () => {
  const DAY_MS = 24 * 60 * 60_000;
  const embedded = () => {
    const config = { ...freshConfig(), dataDir: mkdtempSync(join(tmpdir(), "facefleet-expiry-")) };
    const cloud = localCloud(config, async () => ({ stop: async () => {} }));
    if (!(cloud.blobs instanceof FileBlobStore)) throw new Error("the local cloud keeps its buckets in files");
    return { config, blobs: cloud.blobs, gallery: cloud.blobs.bucket(resourceNames(config).galleryBucket) };
  };

  test("the embedded gallery bucket deletes an abandoned enrollment's embedding once EMBEDDING_EXPIRY_DAYS have passed since it was written, and nothing else", async () => {
    const { config, blobs, gallery } = embedded();
    await gallery.put(`${EMBEDDING_KEY_PREFIX}abandoned.f32`, "e");
    await gallery.put(GALLERY_MANIFEST_KEY, "g");
    await gallery.put("embeddings-lookalike", "x");
    const inBucket = blobs.bucket(resourceNames(config).inBucket);
    await inBucket.put(`${EMBEDDING_KEY_PREFIX}upload.jpg`, "u");
    const now = Date.now();
    expect(await gallery.expire(now + EMBEDDING_EXPIRY_DAYS * DAY_MS - 60_000)).toBe(0);
    expect(await gallery.expire(now + EMBEDDING_EXPIRY_DAYS * DAY_MS + 60_000)).toBe(1);
    expect(await gallery.get(`${EMBEDDING_KEY_PREFIX}abandoned.f32`)).toBeUndefined();
    expect(await gallery.count()).toBe(2);
    // Another bucket has no such rule.
    expect(await inBucket.expire(now + 10 * DAY_MS)).toBe(0);
    expect(await inBucket.get(`${EMBEDDING_KEY_PREFIX}upload.jpg`)).toBeDefined();
  });

  test("without being asked: the first write after a start sweeps what expired while the service was down", async () => {
    const { config, gallery } = embedded();
    await gallery.put(`${EMBEDDING_KEY_PREFIX}old.f32`, "e");
    const folder = join(config.dataDir, resourceNames(config).galleryBucket);
    const old = (Date.now() - (EMBEDDING_EXPIRY_DAYS + 1) * DAY_MS) / 1000;
    for (const file of readdirSync(folder)) utimesSync(join(folder, file), old, old);
    const restarted = localCloud(config, async () => ({ stop: async () => {} })).blobs.bucket(resourceNames(config).galleryBucket);
    await restarted.put(`${EMBEDDING_KEY_PREFIX}new.f32`, "e");
    await waitFor("the old embedding to expire", async () => ((await restarted.get(`${EMBEDDING_KEY_PREFIX}old.f32`)) === undefined ? true : undefined), 5_000);
    expect(await restarted.get(`${EMBEDDING_KEY_PREFIX}new.f32`)).toBeDefined();
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
