/**
 * The windows AWS documents, played by the emulated region, and the scripts surviving them: a new queue unknown for a
 * moment, attribute, lifecycle and IAM changes read back late; and the account settings found in the wild (a managed
 * policy attached by hand, an upload left open).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { CreateImageCommand, DescribeInstancesCommand, EC2Client, RunInstancesCommand, StartInstancesCommand, StopInstancesCommand } from "@aws-sdk/client-ec2";
import { AttachRolePolicyCommand, CreateRoleCommand, DeleteRoleCommand, GetRoleCommand, GetRolePolicyCommand, IAMClient, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetBucketLifecycleConfigurationCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ACCOUNT_ID } from "../../infra/sim/ec2/model.ts";
import { instanceAccessKey } from "../../infra/sim/iam/access.ts";
import { newDefaultVersion } from "../../infra/launch-template.ts";
import { startRegion, TEST_CREDENTIALS, type EmulatedRegion } from "../../infra/sim/region.ts";
import { expectBucketOwner } from "../../roles/cloud/aws/bucket-owner.ts";
import { Ec2Fleet } from "../../roles/cloud/aws/ec2-fleet.ts";
import type { JobQueue } from "../../roles/cloud/types.ts";
import { Controller } from "../../roles/controller/controller.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";
import type { DeploymentState } from "../../infra/state.ts";
import { captureLogs } from "../support/logs.ts";
import { waitFor } from "../support/waiting.ts";
import { runInfraScript } from "./run-script.ts";

setDefaultTimeout(60_000);

const INGRESS = ["--ingress-cidr", "203.0.113.0/24"];

let region: EmulatedRegion;
let dir: string;
let iam: IAMClient;
let s3: S3Client;
let ec2: EC2Client;

const stateFile = (prefix: string) => join(dir, `${prefix}.json`);
const readState = (prefix: string) => JSON.parse(readFileSync(stateFile(prefix), "utf8")) as DeploymentState;
const run = (script: string, prefix: string, args: string[] = []) => runInfraScript(region, script, args, { prefix, stateFile: stateFile(prefix) });

/** Sets the region's propagation windows (ms). */
function propagation(ms: { newQueue: number; lag: number }) {
  region.s3sqs.sqs.newQueueUnknownMs = ms.newQueue;
  region.s3sqs.sqs.attributeLagMs = ms.lag;
  region.s3sqs.s3.lifecycleLagMs = ms.lag;
  region.iam.store.policyChangeDelayMs = ms.lag;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "facefleet-windows-"));
  region = await startRegion({ logDir: join(dir, "instances"), instanceProcess: () => undefined });
  iam = new IAMClient({ ...region.clientConfig, endpoint: region.endpoints.iam });
  s3 = new S3Client({ ...region.clientConfig, endpoint: region.endpoints.s3, forcePathStyle: true });
  ec2 = new EC2Client({ ...region.clientConfig, endpoint: region.endpoints.ec2 });
});

afterAll(async () => {
  for (const client of [iam, s3, ec2]) client?.destroy();
  await region?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("bootstrap through AWS's propagation windows", () => {
  test("a new queue unknown for a second and changes read back late: bootstrap waits, saying so, and ends with a state file and nothing pending", async () => {
    propagation({ newQueue: 1000, lag: 1500 });
    const result = await run("bootstrap", "late", [...INGRESS, "--converge-seconds", "30"]);
    expect(result.code, result.output).toBe(0);
    expect(result.stdout).toContain("AWS does not read back yet");
    expect(result.stdout).toContain("everything reads back as applied");
    const state = readState("late");
    expect(Object.keys(state.queueUrls).sort()).toEqual(["deadLetter", "request", "response"]);
    expect(state.readBackPending).toBeUndefined();
    expect(Object.keys(state.instanceProfileArns ?? {}).sort()).toEqual(["app", "builder", "web"]);
  });

  test("changes that read back later than bootstrap waits: the state file is written all the same, notes what is pending, the next scripts say so, and the next bootstrap clears it", async () => {
    propagation({ newQueue: 0, lag: 4000 });
    const first = await run("bootstrap", "slow", [...INGRESS, "--converge-seconds", "0.5"]);
    expect(first.code, first.output).toBe(1);
    expect(first.stderr).toContain("still does not read back");
    expect(first.stderr).toContain("run bootstrap again to check");
    expect(existsSync(stateFile("slow"))).toBe(true);
    const state = readState("slow");
    expect(state.launchTemplateId).toStartWith("lt-");
    expect(state.readBackPending?.some((change) => change.includes("least-privilege policy"))).toBe(true);
    // The next script starts from the state file, and says what was pending (it stops later, for want of an image).
    const launch = await run("launch", "slow");
    expect(launch.stderr).toContain("bootstrap could not yet read back");
    expect(launch.stderr).not.toContain("no state file");
    propagation({ newQueue: 0, lag: 0 });
    await Bun.sleep(4000);
    const again = await run("bootstrap", "slow", INGRESS);
    expect(again.code, again.output).toBe(0);
    expect(again.stdout).toContain("no changes");
    expect(readState("slow").readBackPending).toBeUndefined();
  });
});

describe("what an operator leaves in the account, and teardown", () => {
  const SSM_CORE = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore";

  test("every bucket aborts incomplete multipart uploads after a day; teardown aborts the open ones and detaches a managed policy attached by hand (README: Session Manager)", async () => {
    propagation({ newQueue: 0, lag: 0 });
    const bootstrap = await run("bootstrap", "handmade", INGRESS);
    expect(bootstrap.code, bootstrap.output).toBe(0);
    for (const bucket of ["handmade-in-bucket", "handmade-out-bucket", "handmade-reports-bucket"]) {
      const { Rules } = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }));
      expect(Rules?.find((rule) => rule.AbortIncompleteMultipartUpload)).toMatchObject({ Status: "Enabled", AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } });
    }
    const { Rules } = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: "handmade-out-bucket" }));
    expect(Rules?.find((rule) => rule.Expiration)).toMatchObject({ Filter: { Prefix: "embeddings/" }, Expiration: { Days: 1 } });

    // A web process killed mid-upload leaves its upload open.
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: "handmade-in-bucket", Key: "uploads/big.jpg" }));
    await s3.send(new UploadPartCommand({ Bucket: "handmade-in-bucket", Key: "uploads/big.jpg", UploadId, PartNumber: 1, Body: new Uint8Array(1024) }));
    const listed = await s3.send(new ListMultipartUploadsCommand({ Bucket: "handmade-in-bucket" }));
    expect(listed.Uploads?.map((upload) => [upload.Key, upload.UploadId])).toEqual([["uploads/big.jpg", UploadId]]);

    await iam.send(new AttachRolePolicyCommand({ RoleName: "handmade-web-role", PolicyArn: SSM_CORE }));
    // As on AWS: a role with a managed policy attached cannot be deleted.
    const trust = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }] });
    await iam.send(new CreateRoleCommand({ RoleName: "bare-role", AssumeRolePolicyDocument: trust }));
    await iam.send(new AttachRolePolicyCommand({ RoleName: "bare-role", PolicyArn: SSM_CORE }));
    await expect(iam.send(new DeleteRoleCommand({ RoleName: "bare-role" }))).rejects.toThrow("must detach all policies first");

    const before = region.s3sqs.requests.length;
    const teardown = await run("teardown", "handmade", ["--yes"]);
    expect(teardown.code, teardown.output).toBe(0);
    expect(teardown.stdout).toContain(`detached ${SSM_CORE}`);
    expect(teardown.stdout).toContain("1 incomplete multipart uploads aborted");
    expect(region.s3sqs.requests.slice(before).filter((request) => request.startsWith("S3 DELETE /handmade-in-bucket/uploads/big.jpg?uploadId="))).toEqual([
      `S3 DELETE /handmade-in-bucket/uploads/big.jpg?uploadId=${UploadId}&x-id=AbortMultipartUpload`,
    ]);
    await expect(iam.send(new GetRoleCommand({ RoleName: "handmade-web-role" }))).rejects.toMatchObject({ name: "NoSuchEntityException" });
    expect(existsSync(stateFile("handmade"))).toBe(false);
  });
});

describe("EBS encryption by default under a customer managed KMS key", () => {
  const KEY = `arn:aws:kms:us-east-1:${ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

  test("bootstrap grants the web role kms:CreateGrant through EC2; without it the controller's start goes pending, then stopped, and its launch (cold pool) pending, then terminated, with Client.InternalError, as on AWS; the controller backs off. launch's own launches that terminate so fail it at once, naming the grant", async () => {
    propagation({ newQueue: 0, lag: 0 });
    region.ec2.ebsEncryption.byDefault = true;
    region.ec2.ebsEncryption.kmsKeyArn = KEY;
    try {
      const bootstrap = await run("bootstrap", "kms", INGRESS);
      expect(bootstrap.code, bootstrap.output).toBe(0);
      expect(bootstrap.stdout).toContain(`encrypted with the customer managed key ${KEY}`);
      const state = readState("kms");
      const imageId = Object.values(region.ec2.stockImages)[0]!;
      const appTags = [{ ResourceType: "instance" as const, Tags: [{ Key: "Deployment", Value: "kms" }, { Key: "Role", Value: "app" }] }];
      // A stopped app instance of the warm pool, and the web+controller instance whose role starts it.
      const run1 = await ec2.send(new RunInstancesCommand({ MinCount: 1, MaxCount: 1, ImageId: imageId, LaunchTemplate: { LaunchTemplateId: state.launchTemplateId, Version: "$Default" }, TagSpecifications: appTags }));
      const appId = run1.Instances![0]!.InstanceId!;
      const run2 = await ec2.send(new RunInstancesCommand({ MinCount: 1, MaxCount: 1, ImageId: imageId, InstanceType: "t3.micro", IamInstanceProfile: { Name: "kms-web-profile" } }));
      const webId = run2.Instances![0]!.InstanceId!;
      await region.ec2.waitForState(appId, "running");
      await ec2.send(new StopInstancesCommand({ InstanceIds: [appId] }));
      await region.ec2.waitForState(appId, "stopped");
      const asWeb = new EC2Client({ region: region.region, credentials: { ...TEST_CREDENTIALS, accessKeyId: instanceAccessKey(webId) }, endpoint: region.endpoints.ec2 });
      const fleet = new Ec2Fleet(asWeb, { deployment: "kms", launchTemplateName: "kms-instance" });
      try {
        expect(await fleet.start([appId])).toEqual([appId]);
        await region.ec2.waitForState(appId, "running");
        await ec2.send(new StopInstancesCommand({ InstanceIds: [appId] }));
        await region.ec2.waitForState(appId, "stopped");

        // The role as it was before this change: everything but the grant.
        const { PolicyDocument } = await iam.send(new GetRolePolicyCommand({ RoleName: "kms-web-role", PolicyName: "kms-web-policy" }));
        const document = JSON.parse(decodeURIComponent(PolicyDocument!)) as { Statement: { Action: string | string[] }[] };
        expect(JSON.stringify(document)).toContain("kms:CreateGrant");
        document.Statement = document.Statement.filter((statement) => statement.Action !== "kms:CreateGrant");
        await iam.send(new PutRolePolicyCommand({ RoleName: "kms-web-role", PolicyName: "kms-web-policy", PolicyDocument: JSON.stringify(document) }));
        const started = await asWeb.send(new StartInstancesCommand({ InstanceIds: [appId] }));
        expect(started.StartingInstances![0]!.CurrentState!.Name).toBe("pending");
        await region.ec2.waitForState(appId, "stopped");
        expect(await fleet.list()).toEqual([{ id: appId, state: "stopped", stateReason: "Client.InternalError" }]);

        // A cold pool: the controller's launch goes pending, then shutting-down and terminated with the same reason,
        // and the controller backs off, naming the grant, instead of launching again at every tick.
        // Launched from an image of the deployment, as baked: the web role may launch no other.
        const { ImageId: bakedId } = await ec2.send(new CreateImageCommand({ InstanceId: appId, Name: "kms-app", TagSpecifications: [{ ResourceType: "image", Tags: [{ Key: "Deployment", Value: "kms" }] }] }));
        await newDefaultVersion(ec2, state.launchTemplateId!, { ImageId: bakedId });
        region.ec2.delays.bootDelayMs = 300;
        region.ec2.delays.stopDelayMs = 1_000;
        const controller = new Controller({
          queue: { depth: async () => ({ visible: 1, inFlight: 0 }) } as Pick<JobQueue, "depth"> as JobQueue,
          fleet,
          reports: { read: async () => [], write: async () => {}, remove: async () => {} },
          scaling: { maxInstances: 2, slotsPerInstance: 1, poolPolicy: "cold", scaleInAfterMs: 60_000 },
          intervalMs: 50,
          log: captureLogs().logger,
          metrics: new ServiceMetrics(),
        });
        const reason = await waitFor("the controller's capacity cap", async () => (await controller.step(), (controller.health().capacity as { reason?: string }).reason), 5_000);
        expect(reason).toStartWith("launched instances terminate as they boot (Client.InternalError)");
        expect(reason).toContain("kms:CreateGrant");
        for (let tick = 0; tick < 10; tick++) await controller.step();
        const appInstances = async () =>
          (await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "tag:Deployment", Values: ["kms"] }, { Name: "tag:Role", Values: ["app"] }] }))).Reservations!.flatMap((reservation) => reservation.Instances!);
        const launched = (await appInstances()).filter((instance) => instance.InstanceId !== appId);
        expect(launched).toHaveLength(1);
        await region.ec2.waitForState(launched[0]!.InstanceId!, "terminated");
        // Listed terminated, with its reason, as AWS does for about an hour; the fleet lists it no more.
        expect((await appInstances()).find((instance) => instance.InstanceId === launched[0]!.InstanceId)).toMatchObject({
          State: { Name: "terminated" },
          StateReason: { Code: "Client.InternalError", Message: "Client.InternalError: Client error on launch" },
        });
        expect((await fleet.list()).map((instance) => instance.id)).toEqual([appId]);
        await controller.stop();

        // The operator's own launch, when the key's policy does not let those credentials create the grant: its
        // instances terminate as they boot. Launch says so and fails as they do, not at its 10 min timeout; once the
        // credentials may, launch again fills what is missing (the warm pool holds the stopped appId already).
        writeFileSync(stateFile("kms"), JSON.stringify({ ...readState("kms"), imageId: bakedId }));
        region.ec2.ebsEncryption.operatorMayCreateGrant = false;
        const refused = await run("launch", "kms", ["--pool", "warm", "--pool-size", "2"]);
        expect(refused.code, refused.output).toBe(1);
        expect(refused.stderr).toMatch(/EC2 took the launch of 1 app instance\(s\), but these went down as they booted: i-\w+ (shutting-down|terminated) \(Client\.InternalError: Client error on launch\); with EBS encryption by default/);
        expect(refused.stderr).toContain("the credentials that run launch need kms:CreateGrant");
        const cold = await run("launch", "kms", ["--pool", "cold"]);
        expect(cold.code, cold.output).toBe(1);
        expect(cold.stderr).toMatch(/EC2 took the web tier's launch or start, but these went down as they booted: i-\w+ (shutting-down|terminated) \(Client\.InternalError/);
        delete region.ec2.ebsEncryption.operatorMayCreateGrant;
        const again = await run("launch", "kms", ["--pool", "warm", "--pool-size", "2"]);
        expect(again.code, again.output).toBe(0);
        expect(again.stdout).toContain("app: 2");
      } finally {
        asWeb.destroy();
      }
    } finally {
      region.ec2.delays.bootDelayMs = 0;
      region.ec2.delays.stopDelayMs = 0;
      region.ec2.ebsEncryption.byDefault = false;
      delete region.ec2.ebsEncryption.kmsKeyArn;
      delete region.ec2.ebsEncryption.operatorMayCreateGrant;
    }
  });
});

describe("ExpectedBucketOwner: the deployment's bucket names claimed by a stranger after a teardown", () => {
  const STRANGER = "999988887777";

  test("every S3 call but the listing and the creation names the account; S3 answers 403 when the bucket is another's", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "owned-bucket" }));
    const ours = new S3Client({ ...region.clientConfig, endpoint: region.endpoints.s3, forcePathStyle: true });
    const wrong = new S3Client({ ...region.clientConfig, endpoint: region.endpoints.s3, forcePathStyle: true });
    expectBucketOwner(ours, async () => ACCOUNT_ID);
    expectBucketOwner(wrong, async () => STRANGER);
    try {
      await ours.send(new PutObjectCommand({ Bucket: "owned-bucket", Key: "a", Body: "x" }));
      await expect(wrong.send(new PutObjectCommand({ Bucket: "owned-bucket", Key: "a", Body: "x" }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
      expect((await wrong.send(new ListBucketsCommand({}))).Buckets?.some((bucket) => bucket.Name === "owned-bucket")).toBe(true);
    } finally {
      ours.destroy();
      wrong.destroy();
    }
  });

  test("bootstrap stops at a bucket of the deployment's name that a stranger owns (and lets anyone write): nothing written there, not even the token", async () => {
    propagation({ newQueue: 0, lag: 0 });
    region.s3sqs.bucketOwners.set("claimed-in-bucket", STRANGER);
    await s3.send(new CreateBucketCommand({ Bucket: "claimed-in-bucket" }));
    const before = region.s3sqs.requests.length;
    const result = await run("bootstrap", "claimed", INGRESS);
    expect(result.code, result.output).toBe(1);
    expect(result.stderr).toContain("bucket name claimed-in-bucket is taken by another AWS account");
    expect(region.s3sqs.requests.slice(before).filter((request) => /^S3 (PUT|POST|DELETE) \/claimed-in-bucket/.test(request))).toEqual([]);
  });
});
