/**
 * The infra scripts as a user runs them (separate processes, configured only through the SDK's standard
 * environment) against an emulated region: fauxqs for S3 and SQS, the control-plane emulator for EC2 and IAM.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DescribeLaunchTemplateVersionsCommand, EC2Client } from "@aws-sdk/client-ec2";
import { ListBucketsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, GetQueueUrlCommand, ListQueuesCommand, SetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startFauxqs } from "fauxqs";
import { startFauxqsFront, type FauxqsFront } from "./fauxqs-front.ts";
import { startControlPlaneEmulator, type ControlPlaneEmulator } from "./control-plane-emulator.ts";

const REPO = resolve(import.meta.dir, "../..");
const PREFIX = "itest";
const CLIENT = { region: "us-east-1", credentials: { accessKeyId: "test", secretAccessKey: "test" } } as const;
const MUTATING = /^(Create|Put|Delete|Update|Add|Remove|Tag|Authorize|Revoke|Modify|Run|Start|Stop|Terminate|Deregister)/;

let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
let front: FauxqsFront;
let plane: ControlPlaneEmulator;
let dir: string;
let s3: S3Client;
let sqs: SQSClient;
let ec2: EC2Client;

const stateFile = (prefix: string) => join(dir, `${prefix}.json`);

async function run(script: string, args: string[] = [], options: { prefix?: string; stdin?: string } = {}) {
  const prefix = options.prefix ?? PREFIX;
  const env: Record<string, string | undefined> = {
    ...process.env,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_ENDPOINT_URL_S3: front.address,
    AWS_ENDPOINT_URL_SQS: front.address,
    AWS_ENDPOINT_URL_EC2: plane.address,
    AWS_ENDPOINT_URL_IAM: plane.address,
    FACEFLEET_PREFIX: prefix,
    FACEFLEET_CONFIG: undefined,
  };
  const child = Bun.spawn(["bun", `infra/${script}.ts`, "--state-file", stateFile(prefix), "--poll-seconds", "0.05", ...args], {
    cwd: REPO,
    env,
    stdin: new TextEncoder().encode(options.stdin ?? ""),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr, output: stdout + stderr };
}

/** Runs the script and returns the control-plane actions it made. */
async function runCounting(script: string, args: string[] = [], options: { prefix?: string; stdin?: string } = {}) {
  const before = plane.calls.length;
  const result = await run(script, args, options);
  if (result.code !== 0) throw new Error(`${script} exited ${result.code}:\n${result.output}`);
  return { ...result, actions: plane.calls.slice(before) };
}

async function queueAttributes(name: string) {
  const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["All"] }));
  return { url: QueueUrl!, attributes: Attributes ?? {} };
}

const bucketNames = async () => ((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).map((bucket) => bucket.Name);
const queueUrls = async () => (await sqs.send(new ListQueuesCommand({}))).QueueUrls ?? [];
const alive = (prefix: string) => [...plane.state.instances.values()].filter((i) => i.tags.Deployment === prefix && i.state !== "terminated");

beforeAll(async () => {
  fauxqs = await startFauxqs({ port: 0, logger: false });
  front = startFauxqsFront(fauxqs.address);
  plane = startControlPlaneEmulator();
  dir = mkdtempSync(join(tmpdir(), "facefleet-infra-"));
  s3 = new S3Client({ ...CLIENT, endpoint: front.address });
  sqs = new SQSClient({ ...CLIENT, endpoint: front.address });
  ec2 = new EC2Client({ ...CLIENT, endpoint: plane.address });
});

afterAll(async () => {
  for (const client of [s3, sqs, ec2]) client?.destroy();
  await front?.stop();
  await plane?.stop();
  await fauxqs?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a deployment's life in the emulated region", () => {
  test("bootstrap --dry-run prints the plan and changes nothing", async () => {
    const { stdout, actions } = await runCounting("bootstrap", ["--dry-run"]);
    expect(stdout).toContain("would create bucket itest-in-bucket");
    expect(stdout).toContain("would create launch-template itest-instance");
    expect(actions.filter((action) => MUTATING.test(action))).toEqual([]);
    expect(await bucketNames()).toEqual([]);
    expect(await queueUrls()).toEqual([]);
    expect(existsSync(stateFile(PREFIX))).toBe(false);
  });

  test("bootstrap creates the deployment: 1 KiB long-polled request queue with redrive, IMDSv2-only launch template", async () => {
    const { stdout } = await runCounting("bootstrap", ["--ingress-cidr", "203.0.113.0/24"]);
    expect(stdout).toContain("applying 18 changes");
    const request = await queueAttributes("itest-req-queue");
    expect(request.attributes.MaximumMessageSize).toBe("1024");
    expect(request.attributes.ReceiveMessageWaitTimeSeconds).toBe("20");
    expect(JSON.parse(request.attributes.RedrivePolicy!)).toEqual({ deadLetterTargetArn: "arn:aws:sqs:us-east-1:000000000000:itest-dlq", maxReceiveCount: 3 });

    const state = JSON.parse(readFileSync(stateFile(PREFIX), "utf8"));
    expect(state.queueUrls.request).toBe(request.url);
    const { LaunchTemplateVersions } = await ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: state.launchTemplateId, Versions: ["$Default"] }));
    const data = LaunchTemplateVersions?.[0]?.LaunchTemplateData;
    expect(data?.MetadataOptions?.HttpTokens).toBe("required");
    expect(data?.MetadataOptions?.InstanceMetadataTags).toBe("enabled");
    expect(data?.IamInstanceProfile?.Name).toBe("itest-instance-profile");
    expect(data?.SecurityGroupIds).toEqual([state.securityGroupId]);

    const group = plane.state.securityGroups.get(state.securityGroupId)!;
    expect(group.rules).toEqual([{ protocol: "tcp", from: 8000, to: 8000, cidr: "203.0.113.0/24" }]);
    expect(group.tags.Deployment).toBe(PREFIX);
    const role = plane.state.roles.get("itest-instance-role")!;
    expect(JSON.parse(role.trust).Statement[0].Principal).toEqual({ Service: "ec2.amazonaws.com" });
    expect(JSON.parse(role.policies.get("itest-instance-policy")!).Statement.length).toBeGreaterThan(5);
  });

  test("a second bootstrap changes nothing and says so", async () => {
    const { stdout, actions } = await runCounting("bootstrap", ["--ingress-cidr", "203.0.113.0/24"]);
    expect(stdout).toContain("no changes: deployment 'itest' is up to date");
    expect(actions.filter((action) => MUTATING.test(action))).toEqual([]);
  });

  test("drift is shown by --dry-run without touching it, then repaired", async () => {
    const { url } = await queueAttributes("itest-req-queue");
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { MaximumMessageSize: "2048" } }));
    const dry = await runCounting("bootstrap", ["--dry-run", "--ingress-cidr", "203.0.113.0/24"]);
    expect(dry.stdout).toContain("would set MaximumMessageSize of queue itest-req-queue");
    expect((await queueAttributes("itest-req-queue")).attributes.MaximumMessageSize).toBe("2048");
    const fix = await runCounting("bootstrap", ["--ingress-cidr", "203.0.113.0/24"]);
    expect(fix.stdout).toContain("applying 1 changes");
    expect((await queueAttributes("itest-req-queue")).attributes.MaximumMessageSize).toBe("1024");
  });

  test("bake-ami boots a builder with the user data, images it once it reports, and cleans up", async () => {
    const baking = run("bake-ami", ["--image", "ami-0stock"]);
    // Play the builder's part: report success in S3 and power off.
    let builder: ReturnType<typeof alive>[number] | undefined;
    for (let attempt = 0; attempt < 800 && !builder; attempt++) {
      builder = alive(PREFIX).find((instance) => instance.tags.Name === "itest-ami-builder");
      if (!builder) await Bun.sleep(25);
    }
    expect(builder).toBeDefined();
    expect(builder!.imageId).toBe("ami-0stock");
    expect(builder!.userData).toContain("bun run model:build");
    const { Contents } = await s3.send(new ListObjectsV2Command({ Bucket: "itest-in-bucket", Prefix: "_bake/" }));
    const tarball = Contents?.[0]?.Key!;
    expect(tarball).toEndWith("facefleet.tar.gz");
    await s3.send(new PutObjectCommand({ Bucket: "itest-in-bucket", Key: tarball.replace("facefleet.tar.gz", "done"), Body: "ok" }));
    builder!.state = "stopped";

    const result = await baking;
    expect(result.code, result.output).toBe(0);
    const state = JSON.parse(readFileSync(stateFile(PREFIX), "utf8"));
    const image = plane.state.images.get(state.imageId)!;
    expect(image.tags.Deployment).toBe(PREFIX);
    expect(builder!.state).toBe("terminated");
    expect((await s3.send(new ListObjectsV2Command({ Bucket: "itest-in-bucket" }))).KeyCount ?? 0).toBe(0);
    const { LaunchTemplateVersions } = await ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: state.launchTemplateId, Versions: ["$Default"] }));
    expect(LaunchTemplateVersions?.[0]?.LaunchTemplateData?.ImageId).toBe(state.imageId);
    expect(LaunchTemplateVersions?.[0]?.LaunchTemplateData?.MetadataOptions?.HttpTokens).toBe("required");
  });

  test("launch boots the web tier and a warm pool of stopped app instances; a second launch changes nothing", async () => {
    const dry = await runCounting("launch", ["--pool-size", "3", "--dry-run"]);
    expect(dry.stdout).toContain("would launch 1 web+controller instance");
    expect(dry.stdout).toContain("would launch 3 app instances and stop them once running (warm pool)");
    expect(dry.actions.filter((action) => MUTATING.test(action))).toEqual([]);
    expect(alive(PREFIX)).toEqual([]);

    const first = await runCounting("launch", ["--pool-size", "3"]);
    expect(first.stdout).toContain("web tier: curl -F inputFile=@face.jpg http://");
    const instances = alive(PREFIX);
    expect(instances.filter((i) => i.tags.Role === "web+controller").map((i) => i.state)).toEqual(["running"]);
    expect(instances.filter((i) => i.tags.Role === "app").map((i) => i.state)).toEqual(["stopped", "stopped", "stopped"]);
    expect(instances.every((i) => i.imageId === JSON.parse(readFileSync(stateFile(PREFIX), "utf8")).imageId)).toBe(true);

    const second = await runCounting("launch", ["--pool-size", "3"]);
    expect(second.stdout).toContain("no changes");
    expect(second.actions.filter((action) => MUTATING.test(action))).toEqual([]);
  });

  test("teardown asks first, then deletes everything tagged with the deployment and nothing of another", async () => {
    await runCounting("bootstrap", [], { prefix: "other" });

    const dry = await runCounting("teardown", ["--dry-run"]);
    expect(dry.stdout).toContain("buckets: itest-in-bucket, itest-out-bucket");
    expect(dry.actions.filter((action) => MUTATING.test(action))).toEqual([]);

    const declined = await runCounting("teardown", [], { stdin: "n\n" });
    expect(declined.stdout).toContain("nothing deleted");
    expect(declined.actions.filter((action) => MUTATING.test(action))).toEqual([]);

    const { stdout } = await runCounting("teardown", ["--yes"]);
    expect(stdout).toContain("deployment 'itest' is gone");
    expect(alive(PREFIX)).toEqual([]);
    const tagged = (items: Iterable<{ tags: Record<string, string> }>) => [...items].filter((item) => item.tags.Deployment === PREFIX);
    expect(tagged(plane.state.securityGroups.values())).toEqual([]);
    expect(tagged(plane.state.launchTemplates.values())).toEqual([]);
    expect(tagged(plane.state.images.values())).toEqual([]);
    expect(tagged(plane.state.roles.values())).toEqual([]);
    expect(tagged(plane.state.profiles.values())).toEqual([]);
    expect((await bucketNames()).filter((name) => name?.startsWith("itest-"))).toEqual([]);
    expect((await queueUrls()).filter((url) => url.includes("/itest-"))).toEqual([]);
    expect(existsSync(stateFile(PREFIX))).toBe(false);

    expect((await bucketNames()).sort()).toEqual(["other-in-bucket", "other-out-bucket"]);
    expect(await queueUrls()).toHaveLength(3);
    expect(plane.state.roles.has("other-instance-role")).toBe(true);
    const again = await runCounting("bootstrap", [], { prefix: "other" });
    expect(again.stdout).toContain("no changes");
  });
});
