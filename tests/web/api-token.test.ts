// The admin token is always there: generated into the data directory in embedded mode, read (and re-read) from the
// input bucket on EC2, the configured one first. The EC2 path runs against the emulated region's S3 (fauxqs).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, DeleteObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { CreateQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { awsCloud, localCloud } from "../../roles/cloud/index.ts";
import { loadConfig, resourceNames, type Config } from "../../roles/config.ts";
import type { RoleContext } from "../../roles/context.ts";
import { API_TOKEN_KEY } from "../../roles/deployment.ts";
import { imageInspector } from "../../roles/start.ts";
import { apiTokenFile, bucketApiToken, localApiToken, MissingApiTokenError } from "../../roles/web/api-token.ts";
import { startWebRole, type RunningWebRole } from "../../roles/web/index.ts";
import { freshConfig, startAwsTestRegion, type AwsTestRegion } from "../cloud/clouds.ts";
import { waitFor } from "../support/waiting.ts";
import { captureLogs, multipart, testImages } from "./support.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

const inspect = imageInspector(40_000_000);

describe("embedded mode", () => {
  test("the first start makes a random token in <dataDir>/api-token, mode 0600, and logs the path, never the token", () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), "facefleet-token-")), "data");
    const logs = captureLogs();
    const token = localApiToken(dataDir, logs.logger).current();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(readFileSync(apiTokenFile(dataDir), "utf8").trim()).toBe(token);
    expect(statSync(apiTokenFile(dataDir)).mode & 0o777).toBe(0o600);
    expect(logs.lines).toContainEqual(expect.objectContaining({ event: "api_token_file", path: apiTokenFile(dataDir) }));
    expect(JSON.stringify(logs.lines)).not.toContain(token);
    // The next start keeps it; another data directory gets its own.
    expect(localApiToken(dataDir, logs.logger).current()).toBe(token);
    expect(localApiToken(mkdtempSync(join(tmpdir(), "facefleet-token-")), logs.logger).current()).not.toBe(token);
  });

  test("with default settings, anonymous list, enroll and delete get 401; the file's token opens them", async () => {
    const config = loadConfig({}, { host: "127.0.0.1", port: 0, dataDir: mkdtempSync(join(tmpdir(), "facefleet-token-")) });
    const context: RoleContext = {
      config,
      names: resourceNames(config),
      cloud: localCloud(config, async () => ({ stop: async () => {} })),
      log: captureLogs().logger,
      metrics: new ServiceMetrics(),
    };
    const web = await startWebRole(context, { inspect, tokenSource: "data-dir" });
    try {
      const url = `http://127.0.0.1:${web.port}`;
      const { jpeg } = await testImages();
      expect((await fetch(`${url}/v1/subjects`)).status).toBe(401);
      expect((await fetch(`${url}/v1/subjects/Paul/faces`, { method: "POST", body: multipart("image", jpeg, "a.jpg") })).status).toBe(401);
      expect((await fetch(`${url}/v1/subjects/Paul`, { method: "DELETE" })).status).toBe(401);
      const authorization = `Bearer ${readFileSync(apiTokenFile(config.dataDir), "utf8").trim()}`;
      expect((await fetch(`${url}/v1/subjects`, { headers: { authorization } })).status).toBe(200);
      expect((await fetch(`${url}/v1/subjects/Paul`, { method: "DELETE", headers: { authorization } })).status).toBe(404);
    } finally {
      await web.stop();
    }
  });
});

describe("on EC2: the input bucket's private object", () => {
  let aws: AwsTestRegion;
  const s3 = () => new S3Client({ forcePathStyle: true });
  beforeAll(async () => {
    aws = await startAwsTestRegion();
  });
  afterAll(() => aws?.stop());

  async function deployment(overrides: Partial<Config> = {}): Promise<RoleContext> {
    const config = freshConfig({ host: "127.0.0.1", port: 0, ...overrides });
    const names = resourceNames(config);
    await s3().send(new CreateBucketCommand({ Bucket: names.inBucket }));
    if (names.outBucket !== names.inBucket) await s3().send(new CreateBucketCommand({ Bucket: names.outBucket }));
    const sqs = new SQSClient({});
    for (const queue of [names.reqQueue, names.respQueue]) await sqs.send(new CreateQueueCommand({ QueueName: queue }));
    return { config, names, cloud: awsCloud(config), log: captureLogs().logger, metrics: new ServiceMetrics() };
  }
  const putToken = (context: RoleContext, token: string) =>
    s3().send(new PutObjectCommand({ Bucket: context.names.inBucket, Key: API_TOKEN_KEY, Body: `${token}\n` }));

  test("none there: the web role refuses to start and says how to create one", async () => {
    const context = await deployment();
    const started = startWebRole(context, { inspect, tokenSource: "input-bucket" });
    await expect(started).rejects.toBeInstanceOf(MissingApiTokenError);
    await expect(started).rejects.toThrow(/bun run infra\/bootstrap\.ts.*infra\/README\.md/);
  });

  test("the web role takes the token from the bucket at boot", async () => {
    const context = await deployment();
    await putToken(context, "token-from-the-bucket");
    let web: RunningWebRole | undefined;
    try {
      web = await startWebRole(context, { inspect, tokenSource: "input-bucket" });
      const url = `http://127.0.0.1:${web.port}/v1/subjects`;
      expect((await fetch(url)).status).toBe(401);
      expect((await fetch(url, { headers: { authorization: "Bearer token-from-the-bucket" } })).status).toBe(200);
    } finally {
      await web?.stop();
    }
  });

  test("a configured FACEFLEET_API_TOKEN wins over the bucket, and needs no object there", async () => {
    const context = await deployment({ apiToken: "configured-token" });
    const web = await startWebRole(context, { inspect, tokenSource: "input-bucket" });
    try {
      expect((await fetch(`http://127.0.0.1:${web.port}/v1/subjects`, { headers: { authorization: "Bearer configured-token" } })).status).toBe(200);
    } finally {
      await web.stop();
    }
  });

  test("a rotated token is picked up at the next re-read, no restart; a vanished one keeps the token in hand", async () => {
    const context = await deployment();
    await putToken(context, "before-rotation");
    const logs = captureLogs();
    const token = await bucketApiToken(context.cloud.blobs.bucket(context.names.inBucket), logs.logger, 100);
    try {
      expect(token.current()).toBe("before-rotation");
      await putToken(context, "after-rotation");
      await waitFor("the rotated token", () => (token.current() === "after-rotation" ? true : undefined), 5000);
      expect(logs.lines).toContainEqual(expect.objectContaining({ event: "api_token_rotated" }));
      await s3().send(new DeleteObjectCommand({ Bucket: context.names.inBucket, Key: API_TOKEN_KEY }));
      await waitFor("a re-read without the object", () => logs.lines.find((line) => line.event === "api_token_missing"), 5000);
      expect(token.current()).toBe("after-rotation");
      expect(JSON.stringify(logs.lines)).not.toContain("rotation");
    } finally {
      token.stop();
    }
  });
});
