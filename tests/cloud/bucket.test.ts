// The bucket contract against files on disk and against S3 (fauxqs) through awsCloud(config).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localCloud } from "../../roles/cloud/index.ts";
import { FileBucket } from "../../roles/cloud/local/file-bucket.ts";
import { resourceNames, type Config } from "../../roles/config.ts";
import { API_KEYS_KEY, API_RESULT_EXPIRY_DAYS, apiResultKey, EMBEDDING_EXPIRY_DAYS, EMBEDDING_KEY_PREFIX, GALLERY_MANIFEST_KEY } from "../../roles/deployment.ts";
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

  test("an object a version before stored under a long key's old file name (the digest alone) is read, listed by count once, replaced and deleted by its key", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "facefleet-bucket-"));
    // A classic result named in a non-Latin script: each byte encodes as %XX, too long for a file name of its own.
    const key = "名".repeat(60);
    const legacyName = `#${createHash("sha256").update(key).digest("hex")}`;
    mkdirSync(join(dataDir, "b"), { recursive: true });
    mkdirSync(join(dataDir, "b.metadata"), { recursive: true });
    writeFileSync(join(dataDir, "b", legacyName), "before the upgrade");
    writeFileSync(join(dataDir, "b.metadata", legacyName), JSON.stringify({ result: "{}" }));
    const bucket = new FileBucket(dataDir, "b");
    expect(new TextDecoder().decode(await bucket.get(key))).toBe("before the upgrade");
    expect(await bucket.metadata(key)).toEqual({ result: "{}" });
    expect(await bucket.count()).toBe(1);
    await bucket.put(key, "after");
    expect(new TextDecoder().decode((await bucket.read(key))!.body)).toBe("after");
    expect(await bucket.count()).toBe(1);

    const deleted = "名".repeat(61);
    writeFileSync(join(dataDir, "b", `#${createHash("sha256").update(deleted).digest("hex")}`), "before the upgrade");
    expect(await bucket.count()).toBe(2);
    await bucket.delete(deleted);
    expect(await bucket.count()).toBe(1);
    expect(await bucket.version(deleted)).toBeUndefined();
  });
});

describe("local bucket expiry (the lifecycle rule of infra/plan.ts, which fauxqs stores but does not apply)", () => {
  const DAY_MS = 24 * 60 * 60_000;
  const embedded = (settings: Partial<Config> = {}) => {
    const config = { ...freshConfig(), dataDir: mkdtempSync(join(tmpdir(), "facefleet-expiry-")), ...settings };
    const cloud = localCloud(config, async () => ({ stop: async () => {} }));
    return { config, blobs: cloud.blobs, gallery: cloud.blobs.bucket(resourceNames(config).galleryBucket) };
  };

  test("the embedded output bucket (the gallery's) deletes an abandoned enrollment's embedding and a faces result left under api/ once a day has passed since they were written, and nothing else", async () => {
    const { config, blobs, gallery } = embedded();
    expect(gallery.name).toBe(resourceNames(config).outBucket);
    expect([EMBEDDING_EXPIRY_DAYS, API_RESULT_EXPIRY_DAYS]).toEqual([1, 1]);
    await gallery.put(`${EMBEDDING_KEY_PREFIX}abandoned.f32`, "e");
    await gallery.put(apiResultKey("web-died-first"), "r");
    await gallery.put(GALLERY_MANIFEST_KEY, "g");
    await gallery.put("embeddings-lookalike", "x");
    await gallery.put("api-lookalike", "classic result");
    const inBucket = blobs.bucket(resourceNames(config).inBucket);
    await inBucket.put(`${EMBEDDING_KEY_PREFIX}upload.jpg`, "u");
    const now = Date.now();
    expect(await gallery.expire(now + DAY_MS - 60_000)).toBe(0);
    expect(await gallery.expire(now + DAY_MS + 60_000)).toBe(2);
    expect(await gallery.get(`${EMBEDDING_KEY_PREFIX}abandoned.f32`)).toBeUndefined();
    expect(await gallery.get(apiResultKey("web-died-first"))).toBeUndefined();
    expect(await gallery.count()).toBe(3);
    // Another bucket has no such rule.
    expect(await inBucket.expire(now + 10 * DAY_MS)).toBe(0);
    expect(await inBucket.get(`${EMBEDDING_KEY_PREFIX}upload.jpg`)).toBeDefined();
  });

  describe("uploaded photos (uploadRetentionDays)", () => {
    const RETENTION_DAYS = 30;
    /** Every kind of object the service keeps, at the keys it uses (names starting with hex characters, as uploads' do). */
    const fill = async ({ config, blobs, gallery }: ReturnType<typeof embedded>) => {
      const names = resourceNames(config);
      const inBucket = blobs.bucket(names.inBucket);
      const outBucket = blobs.bucket(names.outBucket);
      const uploads = [
        `${crypto.randomUUID()}/photo.jpg`,
        `0${crypto.randomUUID().slice(1)}/1-second.png`,
        `f${crypto.randomUUID().slice(1)}/x.webp`,
        // Each dot encodes as "%2E": too long for a file name of its own encoding, so the file is named by a digest.
        `${crypto.randomUUID()}/x${".".repeat(100)}jpg`,
      ];
      for (const key of uploads) await inBucket.put(key, "jpeg", { metadata: { name: "photo" } });
      for (const key of [API_KEYS_KEY, "_secrets/api-token", "_bake/1/project.tar.gz"]) await inBucket.put(key, "private");
      for (const key of ["abc", "0photo", "f00d"]) await outBucket.put(key, "result");
      for (const key of [GALLERY_MANIFEST_KEY, "gallery/log/0000000000000001", "gallery/segments/1-a"]) await gallery.put(key, "gallery");
      return { inBucket, outBucket, uploads };
    };

    test("off by default: nothing of the input bucket ever expires", async () => {
      const deployment = embedded();
      const { inBucket } = await fill(deployment);
      expect(await deployment.blobs.expire(Date.now() + 10 * 365 * DAY_MS)).toBe(0);
      expect(await inBucket.count()).toBe(7);
    });

    test("set: the sweep deletes the uploads (and their metadata) older than the setting, and no private object, result or gallery object", async () => {
      const deployment = embedded({ uploadRetentionDays: RETENTION_DAYS });
      const { inBucket, outBucket, uploads } = await fill(deployment);
      const now = Date.now();
      expect(await deployment.blobs.expire(now + RETENTION_DAYS * DAY_MS - 60_000)).toBe(0);
      expect(await inBucket.count()).toBe(7);
      expect(await deployment.blobs.expire(now + RETENTION_DAYS * DAY_MS + 60_000)).toBe(uploads.length);
      for (const key of uploads) expect(await inBucket.read(key)).toBeUndefined();
      expect((await inBucket.list("")).sort()).toEqual(["_bake/1/project.tar.gz", "_secrets/api-keys.json", "_secrets/api-token"]);
      expect(readdirSync(join(deployment.config.dataDir, `${resourceNames(deployment.config).inBucket}.metadata`))).toEqual([]);
      // The gallery shares the output bucket by default.
      expect(deployment.gallery.name).toBe(outBucket.name);
      expect(await outBucket.count()).toBe(6);
    });

    test("an upload younger than the setting stays while an older one goes", async () => {
      const deployment = embedded({ uploadRetentionDays: RETENTION_DAYS });
      const { inBucket, uploads } = await fill(deployment);
      const folder = join(deployment.config.dataDir, resourceNames(deployment.config).inBucket);
      const old = (Date.now() - (RETENTION_DAYS + 1) * DAY_MS) / 1000;
      const oldFile = readdirSync(folder).find((file) => decodeURIComponent(file) === uploads[0])!;
      utimesSync(join(folder, oldFile), old, old);
      expect(await deployment.blobs.expire(Date.now())).toBe(1);
      expect(await inBucket.read(uploads[0]!)).toBeUndefined();
      expect(await inBucket.read(uploads[1]!)).toBeDefined();
    });
  });

  test("uploadRetentionDays set: an upload a version before stored under a long key's old file name (the digest alone) expires too; a classic result of that form in the output bucket stays", async () => {
    const deployment = embedded({ uploadRetentionDays: 30 });
    const names = resourceNames(deployment.config);
    const legacyFile = (bucket: string, key: string) => {
      const path = join(deployment.config.dataDir, bucket, `#${createHash("sha256").update(key).digest("hex")}`);
      mkdirSync(join(deployment.config.dataDir, bucket), { recursive: true });
      writeFileSync(path, "before the upgrade");
      return path;
    };
    const upload = legacyFile(names.inBucket, `${crypto.randomUUID()}/x${".".repeat(100)}jpg`);
    const result = legacyFile(names.outBucket, "名".repeat(60));
    const now = Date.now();
    expect(await deployment.blobs.expire(now + 30 * DAY_MS - 60_000)).toBe(0);
    expect(await deployment.blobs.expire(now + 30 * DAY_MS + 60_000)).toBe(1);
    expect([existsSync(upload), existsSync(result)]).toEqual([false, true]);
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
