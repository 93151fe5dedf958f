/**
 * The infra scripts as a user runs them (separate processes, configured only through the SDK's standard
 * environment) against the emulated region of infra/sim/. Instances run nothing, except the AMI builder, whose
 * part infra/sim/ami-builder.ts plays: it installs the project into the image for real.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  CreateSecurityGroupCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeSubnetsCommand,
  EC2Client,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { GetBucketLifecycleConfigurationCommand, GetObjectCommand, ListBucketsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, GetQueueUrlCommand, ListQueuesCommand, ReceiveMessageCommand, SendMessageCommand, SetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { vcpusInUse } from "../../infra/sim/ec2/capacity.ts";
import { instanceAccessKey } from "../../infra/sim/iam/access.ts";
import { startRegion, TEST_CREDENTIALS, type EmulatedRegion } from "../../infra/sim/region.ts";
import { runInfraScript } from "./run-script.ts";
import type { ProcessSpec } from "../../infra/sim/ec2/process.ts";
import { CONFIG_FILE, PROJECT_DIR } from "../../infra/user-data.ts";
import { S3BlobStore } from "../../roles/cloud/aws/s3-bucket.ts";
import { API_KEYS_KEY, GALLERY_MANIFEST_KEY } from "../../roles/deployment.ts";
import { ApiKeyStore } from "../../roles/web/api-key-store.ts";
import { captureLogs } from "../support/logs.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

const PREFIX = "itest";
const INGRESS = ["--ingress-cidr", "203.0.113.0/24"];
const TOKEN_KEY = "_secrets/api-token";
/** Each test runs the scripts as processes: seconds each, more on a loaded 2-core machine. */
const SCRIPT_TIMEOUT_MS = 30_000;
/** EC2 and IAM actions, SQS operations (`SQS <operation>`) and S3 requests (`S3 <method> <path>`) that change something. */
const MUTATING = /^(SQS )?(Create|Put|Delete|Update|Add|Remove|Tag|Untag|Set|Send|Purge|Authorize|Revoke|Modify|Run|Start|Stop|Terminate|Deregister)|^S3 (PUT|POST|DELETE) /;

let region: EmulatedRegion;
let dir: string;
let s3: S3Client;
let sqs: SQSClient;
let ec2: EC2Client;
/** What each instance's image would run (the test runs only the builder's). */
const imageProcesses = new Map<string, ProcessSpec | undefined>();
/** Extra environment for the builder's process: a test breaks its install with it. */
let builderEnv: Record<string, string> = {};

const stateFile = (prefix: string) => join(dir, `${prefix}.json`);
const deploymentState = () => JSON.parse(readFileSync(stateFile(PREFIX), "utf8")) as { imageId: string; launchTemplateId: string; securityGroupId: string; queueUrls: Record<string, string> };

interface RunOptions {
  prefix?: string;
  stdin?: string;
  env?: Record<string, string>;
}

function run(script: string, args: string[] = [], options: RunOptions = {}) {
  const prefix = options.prefix ?? PREFIX;
  return runInfraScript(region, script, args, { prefix, stateFile: stateFile(prefix), stdin: options.stdin, env: options.env });
}

/** Runs the script and returns the mutating calls it made to EC2, IAM, S3 and SQS. */
async function runCounting(script: string, args: string[] = [], options: RunOptions = {}) {
  const logs = [region.ec2.actions, region.iam.actions, region.s3sqs.requests];
  const before = logs.map((log) => log.length);
  const result = await run(script, args, options);
  if (result.code !== 0) throw new Error(`${script} exited ${result.code}:\n${result.output}`);
  const calls = logs.flatMap((log, index) => log.slice(before[index]));
  return { ...result, mutations: calls.filter((call) => MUTATING.test(call)) };
}

async function queueAttributes(name: string) {
  const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["All"] }));
  return { url: QueueUrl!, attributes: Attributes ?? {} };
}

const bucketNames = async () => ((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).map((bucket) => bucket.Name);
const queueUrls = async () => (await sqs.send(new ListQueuesCommand({}))).QueueUrls ?? [];
const alive = (prefix: string) => region.ec2.instances().filter((instance) => instance.tags.Deployment === prefix && instance.state !== "terminated");
const taggedWith = (prefix: string, tagsOf: (id: string) => Record<string, string>, ids: Iterable<string>) => [...ids].filter((id) => tagsOf(id).Deployment === prefix);
const iamTags = (tags: Map<string, string>) => Object.fromEntries(tags);
/** An app instance from the deployment's launch template, as the controller asks for one, with `overrides`. */
const launchApp = (overrides: Partial<ConstructorParameters<typeof RunInstancesCommand>[0]> = {}) =>
  new RunInstancesCommand({
    MinCount: 1,
    MaxCount: 1,
    LaunchTemplate: { LaunchTemplateName: "itest-instance", Version: "$Default" },
    TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Deployment", Value: PREFIX }, { Key: "Role", Value: "app" }] }],
    ...overrides,
  });
const storedToken = async (prefix = PREFIX) => (await (await s3.send(new GetObjectCommand({ Bucket: `${prefix}-in-bucket`, Key: TOKEN_KEY }))).Body!.transformToString()).trim();

async function defaultLaunchTemplateData(launchTemplateId: string) {
  const { LaunchTemplateVersions } = await ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: launchTemplateId, Versions: ["$Default"] }));
  return LaunchTemplateVersions?.[0]?.LaunchTemplateData;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "facefleet-infra-"));
  region = await startRegion({
    logDir: join(dir, "instances"),
    instanceEnv: { FACEFLEET_PREFIX: PREFIX },
    instanceProcess(instance, fromImage) {
      imageProcesses.set(instance.id, fromImage);
      return region.ec2.store.tagsOf(instance.id).Name === `${PREFIX}-ami-builder` && fromImage ? { ...fromImage, env: { ...fromImage.env, ...builderEnv } } : undefined;
    },
  });
  // EC2 is eventually consistent: a new instance or image may be unknown to Describe* for a moment.
  region.ec2.delays.readAfterCreateLagMs = 300;
  // A new security group is NotFound for a moment, a new instance profile unusable (AWS: some seconds), and a deleted
  // queue stays listed (AWS: about 60 s).
  Object.assign(region.ec2.delays, { securityGroupLagMs: 300, instanceProfileLagMs: 1000 });
  region.s3sqs.sqs.deletedQueueListedMs = 1000;
  s3 = new S3Client({ ...region.clientConfig, endpoint: region.endpoints.s3 });
  sqs = new SQSClient({ ...region.clientConfig, endpoint: region.endpoints.sqs });
  ec2 = new EC2Client({ ...region.clientConfig, endpoint: region.endpoints.ec2 });
});

afterAll(async () => {
  for (const client of [s3, sqs, ec2]) client?.destroy();
  await region?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a deployment's life in the emulated region", () => {
  test("bootstrap without --ingress-cidr refuses to run and says how to open port 8000", async () => {
    const before = region.s3sqs.requests.length;
    const result = await run("bootstrap", ["--dry-run"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--ingress-cidr is required");
    expect(result.stderr).toContain("--ingress-cidr 0.0.0.0/0 opens it to the whole internet");
    expect(region.s3sqs.requests.length).toBe(before);
  }, SCRIPT_TIMEOUT_MS);

  test("bootstrap --dry-run prints the plan and changes nothing", async () => {
    const { stdout, mutations } = await runCounting("bootstrap", ["--dry-run", ...INGRESS], { env: { FACEFLEET_API_TOKEN: "dry-run-secret" } });
    expect(stdout).toContain("would store the admin token as private object s3://itest-in-bucket/_secrets/api-token");
    expect(stdout).not.toContain("dry-run-secret");
    expect(stdout).toContain("would create bucket itest-in-bucket");
    expect(stdout).toContain("would create launch-template itest-instance");
    expect(mutations).toEqual([]);
    expect(await bucketNames()).toEqual([]);
    expect(await queueUrls()).toEqual([]);
    expect(existsSync(stateFile(PREFIX))).toBe(false);
  }, SCRIPT_TIMEOUT_MS);

  test("bootstrap creates the deployment: 1 KiB long-polled request queue with redrive, IMDSv2-only launch template, a new admin token printed once", async () => {
    const { stdout, mutations } = await runCounting("bootstrap", INGRESS);
    expect(stdout).toContain("applying 34 changes");
    const printed = /export FACEFLEET_API_TOKEN=(\S+)/.exec(stdout)?.[1];
    expect(printed).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await storedToken()).toBe(printed!);
    expect(stdout.split(printed!)).toHaveLength(2);
    expect(mutations).toContain("CreateLaunchTemplate");
    expect(mutations).toContain("SQS CreateQueue");
    expect(mutations).toContain("S3 PUT /itest-in-bucket/?publicAccessBlock=");
    // Embeddings of abandoned enrollments expire (S3 lifecycle; the emulator keeps the rule but does not run it).
    expect(mutations).toContain("S3 PUT /itest-out-bucket/?lifecycle=");
    const request = await queueAttributes("itest-req-queue");
    expect(request.attributes.MaximumMessageSize).toBe("1024");
    expect(request.attributes.ReceiveMessageWaitTimeSeconds).toBe("20");
    const dlq = await queueAttributes("itest-dlq");
    expect(JSON.parse(request.attributes.RedrivePolicy!)).toEqual({ deadLetterTargetArn: dlq.attributes.QueueArn, maxReceiveCount: 3 });

    const state = deploymentState();
    expect(state.queueUrls.request).toBe(request.url);
    const data = await defaultLaunchTemplateData(state.launchTemplateId);
    expect(data?.MetadataOptions?.HttpTokens).toBe("required");
    expect(data?.MetadataOptions?.InstanceMetadataTags).toBe("enabled");
    expect(data?.IamInstanceProfile?.Name).toBe("itest-app-profile");
    expect(data?.SecurityGroupIds).toEqual([state.securityGroupId]);
    expect(data?.BlockDeviceMappings).toEqual([{ DeviceName: "/dev/xvda", Ebs: { VolumeSize: 8, VolumeType: "gp3", Iops: 3000, Throughput: 125, DeleteOnTermination: true } }]);

    const group = region.ec2.store.securityGroups.get(state.securityGroupId)!;
    expect(group.ingress).toEqual([{ protocol: "tcp", fromPort: 8000, toPort: 8000, cidrs: ["203.0.113.0/24"] }]);
    expect(region.ec2.store.tagsOf(group.id).Deployment).toBe(PREFIX);
    for (const role of ["web", "app", "builder"]) {
      const stored = region.iam.store.roles.get(`itest-${role}-role`)!;
      expect(JSON.parse(stored.assumeRolePolicyDocument).Statement[0].Principal).toEqual({ Service: "ec2.amazonaws.com" });
      expect(JSON.parse(stored.policies.get(`itest-${role}-policy`)!).Statement.length).toBeGreaterThan(1);
      expect(region.iam.store.instanceProfiles.get(`itest-${role}-profile`)?.roleNames).toEqual([`itest-${role}-role`]);
    }
    // The web role's launch permissions name the launch template that was created after the role.
    expect(region.iam.store.roles.get("itest-web-role")!.policies.get("itest-web-policy")).toContain(`launch-template/${state.launchTemplateId}`);
  }, SCRIPT_TIMEOUT_MS);

  test("a bucket name another AWS account owns stops bootstrap with a message that says so, before it creates anything", async () => {
    region.s3sqs.takenBuckets.add("taken-out-bucket");
    try {
      const before = region.s3sqs.requests.length;
      const result = await run("bootstrap", INGRESS, { prefix: "taken" });
      expect(result.code).not.toBe(0);
      expect(result.output).toContain("bucket name taken-out-bucket is taken by another AWS account: set another prefix");
      expect(region.s3sqs.requests.slice(before).filter((call) => MUTATING.test(call))).toEqual([]);
      expect(existsSync(stateFile("taken"))).toBe(false);
    } finally {
      region.s3sqs.takenBuckets.clear();
    }
  }, SCRIPT_TIMEOUT_MS);

  test("a second bootstrap changes nothing and says so, with or without the stored token in FACEFLEET_API_TOKEN", async () => {
    const { stdout, mutations } = await runCounting("bootstrap", INGRESS);
    expect(stdout).toContain("no changes: deployment 'itest' is up to date");
    expect(stdout).not.toContain("FACEFLEET_API_TOKEN=");
    expect(mutations).toEqual([]);
    const same = await runCounting("bootstrap", INGRESS, { env: { FACEFLEET_API_TOKEN: await storedToken() } });
    expect(same.mutations).toEqual([]);
  }, SCRIPT_TIMEOUT_MS);

  test("a new FACEFLEET_API_TOKEN rotates the stored token with one put, and is never printed", async () => {
    const rotated = await runCounting("bootstrap", INGRESS, { env: { FACEFLEET_API_TOKEN: "rotated-secret-0123456789" } });
    expect(rotated.stdout).toContain("replace the admin token at s3://itest-in-bucket/_secrets/api-token with FACEFLEET_API_TOKEN");
    expect(rotated.output).not.toContain("rotated-secret-0123456789");
    expect(rotated.mutations).toEqual([`S3 PUT /itest-in-bucket/${TOKEN_KEY}?x-id=PutObject`]);
    expect(await storedToken()).toBe("rotated-secret-0123456789");
  }, SCRIPT_TIMEOUT_MS);

  test("drift is shown by --dry-run without touching it, then repaired", async () => {
    const { url } = await queueAttributes("itest-req-queue");
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { MaximumMessageSize: "2048" } }));
    const dry = await runCounting("bootstrap", ["--dry-run", ...INGRESS]);
    expect(dry.stdout).toContain("would set MaximumMessageSize of queue itest-req-queue");
    expect(dry.mutations).toEqual([]);
    expect((await queueAttributes("itest-req-queue")).attributes.MaximumMessageSize).toBe("2048");
    const fix = await runCounting("bootstrap", INGRESS);
    expect(fix.stdout).toContain("applying 1 changes");
    expect(fix.mutations).toEqual(["SQS SetQueueAttributes"]);
    expect((await queueAttributes("itest-req-queue")).attributes.MaximumMessageSize).toBe("1024");
  }, SCRIPT_TIMEOUT_MS);

  test("bootstrap with FACEFLEET_UPLOAD_RETENTION_DAYS puts the uploads' rules beside the abort rule of the input bucket, reads them back, and removes them when it is unset", async () => {
    const retaining = { env: { FACEFLEET_UPLOAD_RETENTION_DAYS: "30" } };
    const lifecycle = async () => (await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: "itest-in-bucket" }))).Rules ?? [];
    const set = await runCounting("bootstrap", INGRESS, retaining);
    expect(set.stdout).toContain("expire uploaded photos (keys beginning with 0123456789abcdef, one rule each; not _secrets/ or _bake/) after 30 day(s)");
    expect(set.mutations).toEqual(["S3 PUT /itest-in-bucket/?lifecycle="]);
    const rules = await lifecycle();
    expect(rules.filter((rule) => rule.Expiration?.Days === 30).map((rule) => rule.Filter?.Prefix)).toEqual([..."0123456789abcdef"]);
    expect(rules.find((rule) => rule.AbortIncompleteMultipartUpload)?.AbortIncompleteMultipartUpload?.DaysAfterInitiation).toBe(1);
    expect((await runCounting("bootstrap", INGRESS, retaining)).mutations).toEqual([]);
    const unset = await runCounting("bootstrap", INGRESS);
    expect(unset.mutations).toEqual(["S3 PUT /itest-in-bucket/?lifecycle="]);
    expect((await lifecycle()).map((rule) => rule.ID)).toEqual(["facefleet-abort-incomplete-uploads"]);
  }, 3 * SCRIPT_TIMEOUT_MS);

  test("a builder whose install fails reports its log, and bake-ami fails with the end of it and leaves no image", async () => {
    // No tar, no bash on the builder's PATH: the install cannot start.
    builderEnv = { PATH: "/nonexistent" };
    try {
      const result = await run("bake-ami", ["--image", Object.values(region.ec2.stockImages)[0]!]);
      expect(result.code).not.toBe(0);
      expect(result.output).toContain("the builder failed; the end of its log:");
      expect(result.output).toContain("$ tar -xzf");
      expect(region.ec2.instances().filter((instance) => instance.tags.Name === "itest-ami-builder").map((builder) => builder.state)).toEqual(["terminated"]);
      expect([...region.ec2.store.images.values()].filter((image) => image.rootDir)).toEqual([]);
      expect(((await s3.send(new ListObjectsV2Command({ Bucket: "itest-in-bucket" }))).Contents ?? []).map((object) => object.Key)).toEqual([TOKEN_KEY]);
    } finally {
      builderEnv = {};
    }
  }, SCRIPT_TIMEOUT_MS);

  test("bake-ami boots a builder with the user data (never the admin token) and the builder role, images it once it reports and powers off, and cleans up", async () => {
    const stockImage = Object.values(region.ec2.stockImages)[0]!;
    const result = await run("bake-ami", ["--image", stockImage], { env: { FACEFLEET_API_TOKEN: "rotated-secret-0123456789" } });
    expect(result.code, result.output).toBe(0);
    const builders = region.ec2.instances().filter((instance) => instance.tags.Name === "itest-ami-builder");
    expect(builders.map((builder) => builder.state)).toEqual(["terminated", "terminated"]);
    const builder = region.ec2.store.instances.get(builders[1]!.id)!;
    expect(builder.imageId).toBe(stockImage);
    const userData = Buffer.from(builder.userData ?? "", "base64").toString("utf8");
    expect(userData).toContain("bun run model:build");
    expect(userData).not.toContain("rotated-secret-0123456789");
    expect(userData).not.toContain("apiToken");
    expect(builder.iamInstanceProfile?.name).toBe("itest-builder-profile");
    expect(builder.metadataOptions.httpTokens).toBe("required");

    const state = deploymentState();
    const image = region.ec2.store.images.get(state.imageId)!;
    expect(image.sourceInstanceId).toBe(builder.id);
    // The builder installed the project into the image: its models, production dependencies only.
    const project = join(image.rootDir!, PROJECT_DIR);
    expect(existsSync(join(project, "index.ts"))).toBe(true);
    expect(existsSync(join(project, "model/onnx/face-api-dlib-resnet.onnx"))).toBe(true);
    expect(existsSync(join(project, "node_modules/elysia/package.json"))).toBe(true);
    expect(existsSync(join(project, "node_modules/onnx-proto"))).toBe(false);
    // And the files the user data writes: the configuration every instance of the image reads.
    expect(JSON.parse(readFileSync(join(image.rootDir!, CONFIG_FILE), "utf8"))).toMatchObject({ prefix: PREFIX, instanceMetadata: "required" });
    expect(region.ec2.store.tagsOf(image.id).Deployment).toBe(PREFIX);
    // Only the token is left in the input bucket: the tarball and the marker are gone.
    expect(((await s3.send(new ListObjectsV2Command({ Bucket: "itest-in-bucket" }))).Contents ?? []).map((object) => object.Key)).toEqual([TOKEN_KEY]);
    const data = await defaultLaunchTemplateData(state.launchTemplateId);
    expect(data?.ImageId).toBe(state.imageId);
    expect(data?.MetadataOptions?.HttpTokens).toBe("required");
    // The builder installs the project for real: seconds with Bun's install cache warm, more on a loaded machine.
  }, 2 * SCRIPT_TIMEOUT_MS);

  test("launch boots the web tier and a warm pool of stopped app instances; a second launch changes nothing", async () => {
    const dry = await runCounting("launch", ["--pool-size", "3", "--dry-run"]);
    expect(dry.stdout).toContain("would launch 1 web+controller instance");
    expect(dry.stdout).toContain("would launch 3 app instances and stop them once running (warm pool)");
    expect(dry.mutations).toEqual([]);
    expect(alive(PREFIX)).toEqual([]);

    // A vCPU quota with room for the web tier and 2 app instances at a time, as a new account's 32 vCPUs for 15.
    region.ec2.capacity.vcpuQuota = vcpusInUse(region.ec2.store.instances.values()) + 3 * 2;
    const first = await runCounting("launch", ["--pool-size", "3"]).finally(() => (region.ec2.capacity.vcpuQuota = Infinity));
    expect(first.stdout).toContain("EC2 gave 2 of 3 app instance(s)");
    expect(first.stdout).toContain("web tier: curl -F inputFile=@face.jpg http://");
    const instances = alive(PREFIX);
    expect(instances.filter((i) => i.tags.Role === "web+controller").map((i) => i.state)).toEqual(["running"]);
    expect(instances.filter((i) => i.tags.Role === "app").map((i) => i.state)).toEqual(["stopped", "stopped", "stopped"]);
    expect(instances.every((i) => i.imageId === deploymentState().imageId)).toBe(true);
    const profileOf = (id: string) => region.ec2.store.instances.get(id)!.iamInstanceProfile?.name;
    expect(instances.map((i) => `${i.tags.Role} ${profileOf(i.id)}`).sort()).toEqual(["app itest-app-profile", "app itest-app-profile", "app itest-app-profile", "web+controller itest-web-profile"]);
    // Instances of the baked image boot the service from the image's project directory, not from the repository, and
    // restart it as the unit the builder wrote into the image says (tests/sim/systemd.test.ts reads the same).
    const image = region.ec2.store.images.get(deploymentState().imageId)!;
    const service = { restart: "on-failure" as const, restartDelayMs: 5000, startLimitIntervalMs: 0, startLimitBurst: 5 };
    const baked = { command: [process.execPath, "index.ts"], cwd: join(image.rootDir!, PROJECT_DIR), env: { FACEFLEET_CONFIG: join(image.rootDir!, CONFIG_FILE) }, service };
    for (const instance of instances) expect(imageProcesses.get(instance.id)).toEqual(baked);

    const second = await runCounting("launch", ["--pool-size", "3"]);
    expect(second.stdout).toContain("no changes");
    expect(second.mutations).toEqual([]);
  }, SCRIPT_TIMEOUT_MS);

  test("each instance's calls are held to its own role: app instances cannot write the gallery, read the token or launch; the controller launches only app instances", async () => {
    const signedAs = (instanceId: string) => {
      const config = { region: region.region, credentials: { ...TEST_CREDENTIALS, accessKeyId: instanceAccessKey(instanceId) } };
      return {
        s3: new S3Client({ ...config, endpoint: region.endpoints.s3, forcePathStyle: true }),
        sqs: new SQSClient({ ...config, endpoint: region.endpoints.sqs }),
        ec2: new EC2Client({ ...config, endpoint: region.endpoints.ec2 }),
        iam: new IAMClient({ ...config, endpoint: region.endpoints.iam }),
      };
    };
    const instances = alive(PREFIX);
    const webId = instances.find((instance) => instance.tags.Role === "web+controller")!.id;
    const appId = instances.find((instance) => instance.tags.Role === "app")!.id;
    const web = signedAs(webId);
    const app = signedAs(appId);
    const { url: requestQueue } = await queueAttributes("itest-req-queue");
    try {
      const denied = { name: "AccessDenied" };
      await expect(app.s3.send(new PutObjectCommand({ Bucket: "itest-out-bucket", Key: GALLERY_MANIFEST_KEY, Body: "forged" }))).rejects.toMatchObject(denied);
      await expect(app.s3.send(new GetObjectCommand({ Bucket: "itest-in-bucket", Key: TOKEN_KEY }))).rejects.toMatchObject(denied);
      // Missing, and the app role may list the bucket: S3's 404, not a 403.
      await expect(app.s3.send(new GetObjectCommand({ Bucket: "itest-out-bucket", Key: GALLERY_MANIFEST_KEY }))).rejects.toMatchObject({ name: "NoSuchKey" });
      await app.s3.send(new PutObjectCommand({ Bucket: "itest-out-bucket", Key: "photo", Body: "Someone" }));
      await expect(app.sqs.send(new SendMessageCommand({ QueueUrl: requestQueue, MessageBody: "{}" }))).rejects.toThrow(/not authorized/);
      await expect(app.ec2.send(launchApp())).rejects.toMatchObject({ name: "UnauthorizedOperation" });
      await expect(app.ec2.send(new StartInstancesCommand({ InstanceIds: [appId] }))).rejects.toMatchObject({ name: "UnauthorizedOperation" });
      await expect(app.iam.send(new CreateRoleCommand({ RoleName: "escape", AssumeRolePolicyDocument: "{}" }))).rejects.toThrow(/not authorized to perform: iam:CreateRole/);

      expect(await (await web.s3.send(new GetObjectCommand({ Bucket: "itest-in-bucket", Key: TOKEN_KEY }))).Body!.transformToString()).toBe(await storedToken());
      await expect(web.s3.send(new PutObjectCommand({ Bucket: "itest-in-bucket", Key: TOKEN_KEY, Body: "mine" }))).rejects.toMatchObject(denied);
      // The recognition keys' store, as the web role runs it over its own credentials; the app role may not read it.
      const keys = await ApiKeyStore.open(new S3BlobStore(web.s3).bucket("itest-in-bucket"), captureLogs().logger);
      try {
        const { key, summary } = await keys.create("kiosk");
        expect(keys.verify(key)).toBe(summary.id);
        expect(await keys.revoke(summary.id)).toBe(true);
      } finally {
        keys.stop();
      }
      await expect(ApiKeyStore.open(new S3BlobStore(app.s3).bucket("itest-in-bucket"), captureLogs().logger)).rejects.toMatchObject(denied);
      await expect(app.s3.send(new PutObjectCommand({ Bucket: "itest-in-bucket", Key: API_KEYS_KEY, Body: "{}" }))).rejects.toMatchObject(denied);
      await expect(web.sqs.send(new ReceiveMessageCommand({ QueueUrl: requestQueue, WaitTimeSeconds: 0 }))).rejects.toThrow(/not authorized/);
      await expect(web.ec2.send(launchApp({ InstanceType: "c7i.large" }))).rejects.toMatchObject({ name: "UnauthorizedOperation" });
      await expect(web.ec2.send(launchApp({ TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Deployment", Value: PREFIX }, { Key: "Role", Value: "web" }] }] }))).rejects.toMatchObject({
        name: "UnauthorizedOperation",
      });
      await expect(web.ec2.send(launchApp({ IamInstanceProfile: { Name: "itest-web-profile" } }))).rejects.toMatchObject({ name: "UnauthorizedOperation" });
      await expect(web.ec2.send(new StopInstancesCommand({ InstanceIds: [webId] }))).rejects.toMatchObject({ name: "UnauthorizedOperation" });
      // Its volumes are the template's at most: a caller's mapping overrides the template's and the AMI's device by device.
      const root = { VolumeSize: 8, VolumeType: "gp3" as const, Iops: 3000, Throughput: 125, DeleteOnTermination: true };
      for (const ebs of [{ ...root, VolumeSize: 1000 }, { VolumeSize: 1000 }, { ...root, VolumeType: "io2" as const, Iops: 64000 }, { ...root, Throughput: 1000 }]) {
        await expect(web.ec2.send(launchApp({ BlockDeviceMappings: [{ DeviceName: "/dev/xvda", Ebs: ebs }] }))).rejects.toMatchObject({ name: "UnauthorizedOperation" });
      }
      await expect(web.ec2.send(launchApp({ BlockDeviceMappings: [{ DeviceName: "/dev/sdb", Ebs: { ...root, VolumeSize: 1000 } }] }))).rejects.toMatchObject({
        name: "UnauthorizedOperation",
      });
      const { Instances } = await web.ec2.send(launchApp());
      expect(region.ec2.store.instances.get(Instances![0]!.InstanceId!)!.volumes).toEqual([{ deviceName: "/dev/xvda", ebs: expect.objectContaining({ volumeSize: 8, volumeType: "gp3" }) }]);
      await web.ec2.send(new TerminateInstancesCommand({ InstanceIds: [Instances![0]!.InstanceId!] }));
      await region.ec2.waitForState(Instances![0]!.InstanceId!, "terminated");
    } finally {
      for (const client of [...Object.values(web), ...Object.values(app)]) client.destroy();
    }
  }, SCRIPT_TIMEOUT_MS);

  test("the web role runs no code elsewhere: an app instance it launches with user data ignores it, and it may not pick another security group", async () => {
    const webId = alive(PREFIX).find((instance) => instance.tags.Role === "web+controller")!.id;
    const web = new EC2Client({ region: region.region, endpoint: region.endpoints.ec2, credentials: { ...TEST_CREDENTIALS, accessKeyId: instanceAccessKey(webId) } });
    const marker = "/var/lib/facefleet-owned";
    const userData = Buffer.from(`#!/bin/bash\ncat > ${marker} <<'OWNED'\nroot\nOWNED\n`).toString("base64");
    const { GroupId: otherGroup } = await ec2.send(new CreateSecurityGroupCommand({ GroupName: "itest-open-to-all", Description: "not the deployment's" }));
    const { Subnets } = await ec2.send(new DescribeSubnetsCommand({}));
    const subnet = Subnets![1]!.SubnetId!;
    const launched: string[] = [];
    try {
      const { Instances } = await web.send(launchApp({ UserData: userData }));
      launched.push(Instances![0]!.InstanceId!);
      await region.ec2.waitForState(launched[0]!, "running");
      expect(region.ec2.store.instances.get(launched[0]!)!.userData).toBe(userData);
      expect(existsSync(join(region.ec2.volumeOf(region.ec2.store.instances.get(launched[0]!)!), marker))).toBe(false);

      // The subnet is the caller's to pick (the controller spreads over zones), with the deployment's group only.
      const denied = { name: "UnauthorizedOperation" };
      await expect(web.send(launchApp({ NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: subnet, Groups: [otherGroup!] }] }))).rejects.toMatchObject(denied);
      await expect(web.send(launchApp({ SecurityGroupIds: [otherGroup!] }))).rejects.toMatchObject(denied);
      // Nor IMDSv1 over the template's IMDSv2.
      await expect(web.send(launchApp({ MetadataOptions: { HttpTokens: "optional" } }))).rejects.toMatchObject(denied);
      const spread = await web.send(launchApp({ NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: subnet, Groups: [deploymentState().securityGroupId] }] }));
      launched.push(spread.Instances![0]!.InstanceId!);
      expect(spread.Instances![0]!.SubnetId).toBe(subnet);
    } finally {
      if (launched.length) await ec2.send(new TerminateInstancesCommand({ InstanceIds: launched }));
      for (const id of launched) await region.ec2.waitForState(id, "terminated");
      web.destroy();
    }
  }, SCRIPT_TIMEOUT_MS);

  test("launch starts a stopped web tier again, waiting first for one still stopping (EC2 refuses to start it)", async () => {
    const [web] = alive(PREFIX).filter((instance) => instance.tags.Role === "web+controller");
    region.ec2.delays.stopDelayMs = 500;
    try {
      await ec2.send(new StopInstancesCommand({ InstanceIds: [web!.id] }));
      expect(region.ec2.store.instances.get(web!.id)!.state).toBe("stopping");
      const relaunch = await runCounting("launch", ["--pool-size", "3"]);
      expect(relaunch.stdout).toContain(`start the stopped web+controller instance ${web!.id}`);
      expect(relaunch.mutations).toEqual(["StartInstances"]);
      expect(region.ec2.store.instances.get(web!.id)!.state).toBe("running");
    } finally {
      region.ec2.delays.stopDelayMs = 0;
    }
  }, SCRIPT_TIMEOUT_MS);

  test("teardown asks first, then deletes everything tagged with the deployment and nothing of another", async () => {
    await runCounting("bootstrap", INGRESS, { prefix: "other" });

    const dry = await runCounting("teardown", ["--dry-run"]);
    expect(dry.stdout).toContain("buckets: itest-in-bucket, itest-out-bucket, itest-reports-bucket");
    expect(dry.mutations).toEqual([]);

    const declined = await runCounting("teardown", [], { stdin: "n\n" });
    expect(declined.stdout).toContain("nothing deleted");
    expect(declined.mutations).toEqual([]);
    expect(alive(PREFIX)).toHaveLength(4);

    const { stdout } = await runCounting("teardown", ["--yes"]);
    expect(stdout).toContain("deployment 'itest' is gone");
    expect(alive(PREFIX)).toEqual([]);
    const { store } = region.ec2;
    const tagsOf = (id: string) => store.tagsOf(id);
    expect(taggedWith(PREFIX, tagsOf, store.securityGroups.keys())).toEqual([]);
    expect(taggedWith(PREFIX, tagsOf, store.launchTemplates.keys())).toEqual([]);
    expect(taggedWith(PREFIX, tagsOf, store.images.keys())).toEqual([]);
    const iam = region.iam.store;
    expect(taggedWith(PREFIX, (name) => iamTags(iam.roles.get(name)!.tags), iam.roles.keys())).toEqual([]);
    expect(taggedWith(PREFIX, (name) => iamTags(iam.instanceProfiles.get(name)!.tags), iam.instanceProfiles.keys())).toEqual([]);
    expect((await bucketNames()).filter((name) => name?.startsWith("itest-"))).toEqual([]);
    // ListQueues may go on listing them for a while, as on AWS; SQS itself no longer has them.
    const queueExists = (QueueName: string) => sqs.send(new GetQueueUrlCommand({ QueueName })).then(() => true, () => false);
    expect(await Promise.all(["itest-req-queue", "itest-resp-queue", "itest-dlq"].map(queueExists))).toEqual([false, false, false]);
    expect(existsSync(stateFile(PREFIX))).toBe(false);

    expect((await bucketNames()).sort()).toEqual(["other-in-bucket", "other-out-bucket", "other-reports-bucket"]);
    expect((await queueUrls()).filter((url) => url.includes("/other-"))).toHaveLength(3);
    expect([...iam.roles.keys()].sort()).toEqual(["other-app-role", "other-builder-role", "other-web-role"]);
    expect(taggedWith("other", tagsOf, store.launchTemplates.keys())).toHaveLength(1);
    const again = await runCounting("bootstrap", INGRESS, { prefix: "other" });
    expect(again.stdout).toContain("no changes");
    expect(again.mutations).toEqual([]);
  }, SCRIPT_TIMEOUT_MS);

  test("bootstrap right after a teardown waits until SQS gives the queue names back", async () => {
    region.s3sqs.sqs.queueNameReuseDelayMs = 3000;
    try {
      await runCounting("teardown", ["--yes"], { prefix: "other" });
      const rebuilt = await runCounting("bootstrap", INGRESS, { prefix: "other" });
      // Three queues, and at least one refused first.
      expect(rebuilt.mutations.filter((call) => call === "SQS CreateQueue").length).toBeGreaterThan(3);
      expect((await queueUrls()).filter((url) => url.includes("/other-"))).toHaveLength(3);
    } finally {
      region.s3sqs.sqs.queueNameReuseDelayMs = 0;
    }
  }, SCRIPT_TIMEOUT_MS);
});
