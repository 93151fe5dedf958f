import { describe, expect, test } from "bun:test";
import { Glob } from "bun";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ROOT_VOLUME } from "../../infra/launch-template.ts";
import {
  INSTANCE_ROLES,
  instanceRoleNames,
  instanceRolePermissions,
  instanceRoleTrustPolicy,
  parseRoleArn,
  type InstanceRole,
  type PolicyDocument,
  type PolicyScope,
} from "../../infra/policies.ts";
import { accessControl, s3Access } from "../../infra/sim/iam/access.ts";
import { isAllowed, type RequestContext } from "../../infra/sim/iam/evaluate.ts";
import { loadConfig, resourceNames } from "../../roles/config.ts";
import { apiResultKey, embeddingKey, GALLERY_LOG_PREFIX, GALLERY_MANIFEST_KEY, GALLERY_SEGMENT_PREFIX, LEGACY_GALLERY_KEY, UNREADABLE_GALLERY_KEY_PREFIX } from "../../roles/deployment.ts";

const ACCOUNT = "123456789012";
const TEMPLATE_ID = "lt-0123456789abcdef0";

function scopeFor(prefix: string): PolicyScope {
  return {
    prefix,
    partition: "aws",
    region: "us-east-1",
    accountId: ACCOUNT,
    names: resourceNames(loadConfig({}, { prefix })),
    roles: instanceRoleNames(prefix),
    appInstanceType: "t3.small",
    appRootVolume: ROOT_VOLUME,
    launchTemplateId: TEMPLATE_ID,
  };
}

const scope = scopeFor("alpha");
const policies = Object.fromEntries(INSTANCE_ROLES.map((role) => [role, instanceRolePermissions(role, scope)])) as Record<InstanceRole, PolicyDocument>;
const { names } = scope;
const other = resourceNames(loadConfig({}, { prefix: "beta" }));

const s3 = (bucket: string, key: string) => `arn:aws:s3:::${bucket}/${key}`;
const sqs = (queue: string) => `arn:aws:sqs:us-east-1:${ACCOUNT}:${queue}`;
const ec2 = (resource: string) => `arn:aws:ec2:us-east-1:${ACCOUNT}:${resource}`;
const instance = ec2("instance/i-0123456789abcdef0");
const profileArn = (name: string) => `arn:aws:iam::${ACCOUNT}:instance-profile/${name}`;
const roleArn = (name: string) => `arn:aws:iam::${ACCOUNT}:role/${name}`;
const upload = s3(names.inBucket, "0b6f3c1e-job/photo.jpg");
const token = s3(names.inBucket, "_secrets/api-token");
const recognitionKeys = s3(names.inBucket, "_secrets/api-keys.json");
const tarball = s3(names.inBucket, "_bake/abc123-x/facefleet.tar.gz");
const manifest = s3(names.galleryBucket, GALLERY_MANIFEST_KEY);
const segment = s3(names.galleryBucket, `${GALLERY_SEGMENT_PREFIX}0000000000000040-0b6f3c1e`);
const logEntry = s3(names.galleryBucket, `${GALLERY_LOG_PREFIX}0000000000000041`);
/** The segmented gallery's objects. */
const galleryObjects = [manifest, segment, logEntry];
const legacyGallery = s3(names.galleryBucket, LEGACY_GALLERY_KEY);
const embedding = s3(names.galleryBucket, embeddingKey("job-1"));
/** A classic result: the upload's name, its person. */
const result = s3(names.outBucket, "photo");
/** A faces result too large for its reply. */
const largeResult = s3(names.outBucket, apiResultKey("job-1"));
const galleryAside = s3(names.galleryBucket, `${UNREADABLE_GALLERY_KEY_PREFIX}1796605945822`);

const may = (role: InstanceRole, action: string, resource: string, context?: RequestContext) => isAllowed(policies[role], { action, resource, context });

/** What the controller's RunInstances looks like to IAM, resource by resource (the instance, from the template). */
const appLaunch = (overrides: RequestContext = {}): RequestContext => ({
  "ec2:LaunchTemplate": ec2(`launch-template/${TEMPLATE_ID}`),
  "ec2:InstanceType": "t3.small",
  "ec2:InstanceProfile": profileArn("alpha-app-profile"),
  "ec2:MetadataHttpTokens": "required",
  "ec2:MetadataHttpPutResponseHopLimit": "1",
  "ec2:Tenancy": "default",
  "aws:RequestTag/Deployment": "alpha",
  "aws:RequestTag/Role": "app",
  ...overrides,
});

/** An existing instance as StartInstances, StopInstances and TerminateInstances see it. */
const existing = (overrides: RequestContext = {}): RequestContext => ({
  "aws:ResourceTag/Deployment": "alpha",
  "aws:ResourceTag/Role": "app",
  "ec2:InstanceType": "t3.small",
  "ec2:InstanceProfile": profileArn("alpha-app-profile"),
  ...overrides,
});

describe("instance role trust policy", () => {
  test("only EC2 may assume the roles", () => {
    const trust = instanceRoleTrustPolicy();
    expect(trust.Statement).toHaveLength(1);
    expect(trust.Statement[0]!.Principal).toEqual({ Service: "ec2.amazonaws.com" });
    expect(trust.Statement[0]!.Action).toBe("sts:AssumeRole");
  });

  test("three roles, each in its own profile", () => {
    expect(instanceRoleNames("alpha")).toEqual({
      web: { name: "alpha-web-role", policyName: "alpha-web-policy", profileName: "alpha-web-profile" },
      app: { name: "alpha-app-role", policyName: "alpha-app-policy", profileName: "alpha-app-profile" },
      builder: { name: "alpha-builder-role", policyName: "alpha-builder-policy", profileName: "alpha-builder-profile" },
    });
  });
});

describe("every role", () => {
  test("no wildcard actions, '*' resources only for ec2:DescribeInstances, nothing of another deployment", () => {
    for (const policy of Object.values(policies)) {
      for (const statement of policy.Statement) {
        for (const action of [statement.Action].flat()) expect(action).not.toContain("*");
        if ([statement.Resource].flat().includes("*")) expect(statement.Action).toBe("ec2:DescribeInstances");
      }
      const text = JSON.stringify(policy);
      for (const name of Object.values(other)) expect(text).not.toContain(name);
    }
  });

  test("no role deletes buckets or queues, changes bucket policies, or touches another deployment's objects and queues", () => {
    for (const role of INSTANCE_ROLES) {
      expect(may(role, "s3:DeleteBucket", `arn:aws:s3:::${names.inBucket}`)).toBe(false);
      expect(may(role, "s3:PutBucketPolicy", `arn:aws:s3:::${names.outBucket}`)).toBe(false);
      expect(may(role, "s3:ListBucket", `arn:aws:s3:::${other.inBucket}`)).toBe(false);
      expect(may(role, "s3:GetObject", s3(other.inBucket, "0b6f3c1e-job/photo.jpg"))).toBe(false);
      expect(may(role, "s3:GetObject", s3(`${names.inBucket}-copy`, "0b6f3c1e-job/photo.jpg"))).toBe(false);
      expect(may(role, "sqs:DeleteQueue", sqs(names.reqQueue))).toBe(false);
      expect(may(role, "sqs:PurgeQueue", sqs(names.reqQueue))).toBe(false);
      expect(may(role, "sqs:ReceiveMessage", sqs(other.reqQueue))).toBe(false);
      expect(may(role, "sqs:SendMessage", `arn:aws:sqs:us-east-1:999999999999:${names.respQueue}`)).toBe(false);
      expect(may(role, "ec2:ModifyInstanceAttribute", instance, existing())).toBe(false);
      expect(may(role, "ec2:CreateTags", instance, { "aws:ResourceTag/Deployment": "alpha", "aws:TagKeys": ["Role"] })).toBe(false);
    }
  });
});

describe("job reports", () => {
  const ownArn = ec2("instance/i-0aaaaaaaaaaaaaaaa");
  const report = (instanceArn: string) => s3(names.reportsBucket, `instance-reports/${instanceArn}`);
  const asInstance = { "ec2:SourceInstanceARN": ownArn };

  test("an app instance writes and deletes its own report only, never another's, and reads none", () => {
    expect(may("app", "s3:PutObject", report(ownArn), asInstance)).toBe(true);
    expect(may("app", "s3:DeleteObject", report(ownArn), asInstance)).toBe(true);
    expect(may("app", "s3:PutObject", report(ec2("instance/i-0bbbbbbbbbbbbbbbb")), asInstance)).toBe(false);
    expect(may("app", "s3:PutObject", report(ownArn))).toBe(false);
    expect(may("app", "s3:GetObject", report(ownArn), asInstance)).toBe(false);
    expect(may("web", "s3:PutObject", report(ownArn), asInstance)).toBe(false);
  });

  test("the controller reads every report and may list the bucket (a missing report is then a 404), and deletes the reports of gone instances", () => {
    expect(may("web", "s3:GetObject", report(ownArn))).toBe(true);
    expect(may("web", "s3:DeleteObject", report(ownArn))).toBe(true);
    expect(may("web", "s3:DeleteObject", s3(other.reportsBucket, `instance-reports/${ownArn}`))).toBe(false);
    expect(may("web", "s3:ListBucket", `arn:aws:s3:::${names.reportsBucket}`)).toBe(true);
    expect(may("web", "s3:GetObject", s3(other.reportsBucket, `instance-reports/${ownArn}`))).toBe(false);
  });
});

describe("leases", () => {
  const lease = (part: string) => s3(names.reportsBucket, `leases/${part}`);

  test("the web+controller instance reads and writes its leases, nothing else of the reports bucket but reading reports; app instances none", () => {
    for (const part of ["web", "controller"]) {
      expect(may("web", "s3:GetObject", lease(part))).toBe(true);
      expect(may("web", "s3:PutObject", lease(part))).toBe(true);
      expect(may("web", "s3:DeleteObject", lease(part))).toBe(false);
      expect(may("app", "s3:GetObject", lease(part))).toBe(false);
      expect(may("app", "s3:PutObject", lease(part), { "ec2:SourceInstanceARN": ec2("instance/i-0aaaaaaaaaaaaaaaa") })).toBe(false);
    }
    expect(may("web", "s3:PutObject", s3(names.reportsBucket, "elsewhere"))).toBe(false);
    expect(may("web", "s3:PutObject", s3(other.reportsBucket, "leases/web"))).toBe(false);
  });
});

describe("app instances", () => {
  test("list the input and gallery buckets (so a missing object is a 404), not the output bucket when it is apart", () => {
    for (const role of ["app", "web"] as const) {
      expect(may(role, "s3:ListBucket", `arn:aws:s3:::${names.inBucket}`)).toBe(true);
      expect(may(role, "s3:ListBucket", `arn:aws:s3:::${names.galleryBucket}`)).toBe(true);
    }
    const apart = { ...scope, names: { ...names, galleryBucket: "alpha-gallery" } };
    expect(isAllowed(instanceRolePermissions("app", apart), { action: "s3:ListBucket", resource: `arn:aws:s3:::${names.outBucket}` })).toBe(false);
  });

  test("read input images and the gallery, never the admin token or the bake", () => {
    expect(may("app", "s3:GetObject", upload)).toBe(true);
    for (const object of galleryObjects) expect(may("app", "s3:GetObject", object)).toBe(true);
    expect(may("app", "s3:GetObject", legacyGallery)).toBe(false);
    expect(may("app", "s3:GetObject", token)).toBe(false);
    expect(may("app", "s3:GetObject", tarball)).toBe(false);
  });

  test("write results and embeddings, never the gallery; read and delete none of them", () => {
    for (const written of [result, largeResult, embedding]) {
      expect(may("app", "s3:PutObject", written)).toBe(true);
      expect(may("app", "s3:GetObject", written)).toBe(false);
      expect(may("app", "s3:DeleteObject", written)).toBe(false);
    }
    for (const object of [...galleryObjects, legacyGallery, s3(names.galleryBucket, "gallery/anything")]) {
      expect(may("app", "s3:PutObject", object)).toBe(false);
      expect(may("app", "s3:DeleteObject", object)).toBe(false);
    }
    expect(may("app", "s3:PutObject", upload)).toBe(false);
    expect(may("app", "s3:PutObject", token)).toBe(false);
    expect(may("app", "s3:DeleteObject", result)).toBe(false);
  });

  test("take jobs from the request queue, answer on the response queue, set failures aside on the dead-letter queue", () => {
    for (const action of ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]) expect(may("app", action, sqs(names.reqQueue))).toBe(true);
    expect(may("app", "sqs:SendMessage", sqs(names.respQueue))).toBe(true);
    expect(may("app", "sqs:SendMessage", sqs(names.deadLetterQueue))).toBe(true);
    expect(may("app", "sqs:SendMessage", sqs(names.reqQueue))).toBe(false);
    expect(may("app", "sqs:ReceiveMessage", sqs(names.respQueue))).toBe(false);
    expect(may("app", "sqs:GetQueueAttributes", sqs(names.reqQueue))).toBe(false);
  });

  test("launch, start, stop, terminate, list or pass nothing", () => {
    expect(may("app", "ec2:RunInstances", instance, appLaunch())).toBe(false);
    for (const action of ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"]) expect(may("app", action, instance, existing())).toBe(false);
    expect(may("app", "ec2:DescribeInstances", "*")).toBe(false);
    expect(may("app", "iam:PassRole", roleArn("alpha-app-role"), { "iam:PassedToService": "ec2.amazonaws.com" })).toBe(false);
  });
});

describe("the web+controller instance", () => {
  test("puts uploads (never over the token or the bake), reads the admin token, keeps the gallery", () => {
    expect(may("web", "s3:PutObject", upload)).toBe(true);
    expect(may("web", "s3:DeleteObject", upload)).toBe(true);
    expect(may("web", "s3:AbortMultipartUpload", upload)).toBe(true);
    expect(may("web", "s3:AbortMultipartUpload", token)).toBe(false);
    expect(may("web", "s3:GetObject", upload)).toBe(false);
    expect(may("web", "s3:GetObject", token)).toBe(true);
    expect(may("web", "s3:PutObject", token)).toBe(false);
    expect(may("web", "s3:PutObject", tarball)).toBe(false);
    expect(may("web", "s3:GetObject", tarball)).toBe(false);
  });

  test("writes the gallery's log, segments and manifest, deletes only segments and log entries (compaction), and migrates the legacy blob", () => {
    for (const object of galleryObjects) {
      expect(may("web", "s3:GetObject", object)).toBe(true);
      expect(may("web", "s3:PutObject", object)).toBe(true);
    }
    expect(may("web", "s3:DeleteObject", segment)).toBe(true);
    expect(may("web", "s3:DeleteObject", logEntry)).toBe(true);
    expect(may("web", "s3:DeleteObject", manifest)).toBe(false);
    expect(may("web", "s3:GetObject", legacyGallery)).toBe(true);
    expect(may("web", "s3:DeleteObject", legacyGallery)).toBe(true);
    expect(may("web", "s3:PutObject", legacyGallery)).toBe(false);
    expect(may("web", "s3:PutObject", s3(other.galleryBucket, GALLERY_MANIFEST_KEY))).toBe(false);
  });

  test("takes the app's embeddings and large faces results (read, then delete), writes neither, and touches no other result", () => {
    for (const taken of [embedding, largeResult]) {
      expect(may("web", "s3:GetObject", taken)).toBe(true);
      expect(may("web", "s3:DeleteObject", taken)).toBe(true);
      expect(may("web", "s3:PutObject", taken)).toBe(false);
    }
    for (const action of ["s3:GetObject", "s3:DeleteObject", "s3:PutObject"]) {
      expect(may("web", action, result)).toBe(false);
      expect(may("web", action, s3(names.outBucket, "api"))).toBe(false);
      expect(may("web", action, s3(names.outBucket, "results/api/job-1.json"))).toBe(false);
      expect(may("web", action, s3(other.outBucket, apiResultKey("job-1")))).toBe(false);
    }
    // The input bucket takes uploads under any key, but the web role reads none of them.
    expect(may("web", "s3:GetObject", s3(names.inBucket, apiResultKey("job-1")))).toBe(false);
    // With the gallery in a bucket of its own, the large results stay in the output bucket.
    const apart = instanceRolePermissions("web", { ...scope, names: { ...names, galleryBucket: "alpha-gallery" } });
    expect(isAllowed(apart, { action: "s3:GetObject", resource: largeResult })).toBe(true);
    expect(isAllowed(apart, { action: "s3:GetObject", resource: s3("alpha-gallery", apiResultKey("job-1")) })).toBe(false);
    expect(isAllowed(apart, { action: "s3:GetObject", resource: s3("alpha-gallery", embeddingKey("job-1")) })).toBe(true);
    expect(isAllowed(apart, { action: "s3:GetObject", resource: s3(names.outBucket, embeddingKey("job-1")) })).toBe(false);
  });

  test("keeps a gallery it cannot read aside, beside the gallery, and writes nothing else there", () => {
    expect(may("web", "s3:PutObject", galleryAside)).toBe(true);
    expect(may("web", "s3:GetObject", galleryAside)).toBe(false);
    expect(may("web", "s3:DeleteObject", galleryAside)).toBe(false);
    expect(may("web", "s3:PutObject", s3(names.galleryBucket, "gallery/other.bin"))).toBe(false);
    expect(may("web", "s3:PutObject", s3(names.galleryBucket, "gallery.bin.unreadable-1"))).toBe(false);
    expect(may("web", "s3:PutObject", s3(other.galleryBucket, `${UNREADABLE_GALLERY_KEY_PREFIX}1`))).toBe(false);
  });

  test("reads and rewrites the recognition keys' document; no other role reads or writes it", () => {
    expect(may("web", "s3:GetObject", recognitionKeys)).toBe(true);
    expect(may("web", "s3:PutObject", recognitionKeys)).toBe(true);
    expect(may("web", "s3:GetObject", s3(names.inBucket, "_secrets/other"))).toBe(false);
    expect(may("web", "s3:GetObject", s3(other.inBucket, "_secrets/api-keys.json"))).toBe(false);
    for (const action of ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]) {
      expect(may("app", action, recognitionKeys)).toBe(false);
      expect(may("builder", action, recognitionKeys)).toBe(false);
    }
  });

  test("the emulated region, holding instances to their roles, lets the web role's keys requests through and the app's not", () => {
    const roleOf: Record<string, InstanceRole> = { AKIAWEB: "web", AKIAAPP: "app" };
    const access = accessControl((key) => [policies[roleOf[key]!]]);
    const keysUrl = new URL(`http://s3.localhost/${names.inBucket}/_secrets/api-keys.json`);
    for (const method of ["GET", "HEAD", "PUT"]) {
      expect(access.denied("AKIAWEB", [s3Access(method, keysUrl)])).toBeUndefined();
      expect(access.denied("AKIAAPP", [s3Access(method, keysUrl)])).toBeDefined();
    }
    expect(access.denied("AKIAWEB", [s3Access("PUT", new URL(`http://s3.localhost/${names.inBucket}/_secrets/api-token`))])).toBeDefined();
  });

  test("sends jobs, reads the job queue's depth, takes replies; never takes jobs", () => {
    expect(may("web", "sqs:SendMessage", sqs(names.reqQueue))).toBe(true);
    expect(may("web", "sqs:GetQueueAttributes", sqs(names.reqQueue))).toBe(true);
    expect(may("web", "sqs:ReceiveMessage", sqs(names.respQueue))).toBe(true);
    expect(may("web", "sqs:DeleteMessage", sqs(names.respQueue))).toBe(true);
    for (const action of ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]) expect(may("web", action, sqs(names.reqQueue))).toBe(false);
  });

  test("the controller drains the dead-letter queue: takes, hides and deletes its messages, sends jobs back, answers job_failed, keeps a copy", () => {
    for (const action of ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage", "sqs:GetQueueUrl"]) {
      expect(may("web", action, sqs(names.deadLetterQueue))).toBe(true);
      expect(may("web", action, sqs(other.deadLetterQueue))).toBe(false);
    }
    expect(may("web", "sqs:SendMessage", sqs(names.reqQueue))).toBe(true);
    expect(may("web", "sqs:SendMessage", sqs(names.respQueue))).toBe(true);
    expect(may("web", "sqs:SendMessage", sqs(other.respQueue))).toBe(false);
    // App instances still may not send jobs, nor take dead letters.
    expect(may("app", "sqs:SendMessage", sqs(names.reqQueue))).toBe(false);
    expect(may("app", "sqs:ReceiveMessage", sqs(names.deadLetterQueue))).toBe(false);
  });

  test("launches only app instances: from the deployment's template, of the app type, with the app profile and tags", () => {
    expect(may("web", "ec2:RunInstances", instance, appLaunch())).toBe(true);
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "ec2:InstanceType": "p5.48xlarge" }))).toBe(false);
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "ec2:LaunchTemplate": ec2("launch-template/lt-0other") }))).toBe(false);
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "ec2:LaunchTemplate": undefined }))).toBe(false);
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "ec2:InstanceProfile": profileArn("alpha-web-profile") }))).toBe(false);
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "aws:RequestTag/Role": "web+controller" }))).toBe(false);
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "aws:RequestTag/Deployment": "beta" }))).toBe(false);
    // IMDSv2 as the template sets it: a caller's MetadataOptions may not open IMDSv1.
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "ec2:MetadataHttpTokens": "optional" }))).toBe(false);
    // Nor a hop limit that lets a container or a forwarding host reach the role's credentials, nor dedicated tenancy.
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "ec2:MetadataHttpPutResponseHopLimit": "2" }))).toBe(false);
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "ec2:MetadataHttpPutResponseHopLimit": "one" }))).toBe(false);
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "ec2:Tenancy": "dedicated" }))).toBe(false);
    expect(may("web", "ec2:RunInstances", instance, appLaunch({ "ec2:Tenancy": "host" }))).toBe(false);
    const fromTemplate = { "ec2:LaunchTemplate": ec2(`launch-template/${TEMPLATE_ID}`) };
    for (const resource of [ec2(`launch-template/${TEMPLATE_ID}`), ec2("subnet/subnet-1"), ec2("network-interface/eni-1")]) {
      expect(may("web", "ec2:RunInstances", resource, fromTemplate)).toBe(true);
      expect(may("web", "ec2:RunInstances", resource)).toBe(false);
    }
    // The caller may pick a subnet, never a group but the deployment's.
    const group = ec2("security-group/sg-1");
    expect(may("web", "ec2:RunInstances", group, { ...fromTemplate, "aws:ResourceTag/Deployment": "alpha" })).toBe(true);
    expect(may("web", "ec2:RunInstances", group, fromTemplate)).toBe(false);
    expect(may("web", "ec2:RunInstances", group, { ...fromTemplate, "aws:ResourceTag/Deployment": "beta" })).toBe(false);
    expect(may("web", "ec2:RunInstances", group, { "aws:ResourceTag/Deployment": "alpha" })).toBe(false);
    expect(may("web", "ec2:RunInstances", ec2("launch-template/lt-0other"), { "ec2:LaunchTemplate": ec2("launch-template/lt-0other") })).toBe(false);
    const image = "arn:aws:ec2:us-east-1::image/ami-0abc";
    expect(may("web", "ec2:RunInstances", image, { ...fromTemplate, "aws:ResourceTag/Deployment": "alpha" })).toBe(true);
    expect(may("web", "ec2:RunInstances", image, { ...fromTemplate, "aws:ResourceTag/Deployment": "beta" })).toBe(false);
  });

  test("launches volumes no bigger, faster or dearer than the template's root volume (gp3, 8 GiB, 3000 IOPS, 125 MiB/s)", () => {
    const volume = ec2("volume/*");
    const templateRoot = (overrides: RequestContext = {}): RequestContext => ({
      "ec2:LaunchTemplate": ec2(`launch-template/${TEMPLATE_ID}`),
      "ec2:VolumeSize": "8",
      "ec2:VolumeType": "gp3",
      "ec2:VolumeIops": "3000",
      "ec2:VolumeThroughput": "125",
      ...overrides,
    });
    expect(may("web", "ec2:RunInstances", volume, templateRoot())).toBe(true);
    expect(may("web", "ec2:RunInstances", volume, templateRoot({ "ec2:VolumeSize": "4" }))).toBe(true);
    expect(may("web", "ec2:RunInstances", volume, templateRoot({ "ec2:LaunchTemplate": undefined }))).toBe(false);
    for (const overrides of [
      { "ec2:VolumeSize": "1000" },
      { "ec2:VolumeSize": "9" },
      { "ec2:VolumeType": "io2", "ec2:VolumeIops": "64000" },
      { "ec2:VolumeType": "st1" },
      { "ec2:VolumeIops": "16000" },
      { "ec2:VolumeThroughput": "1000" },
      // A mapping that leaves the size out sets no key: refused rather than assumed small.
      { "ec2:VolumeSize": undefined },
    ]) {
      expect(may("web", "ec2:RunInstances", volume, templateRoot(overrides))).toBe(false);
    }
    // IOPS and throughput are bounded when stated (the only way to raise them), and their absence refuses nothing.
    expect(may("web", "ec2:RunInstances", volume, templateRoot({ "ec2:VolumeIops": undefined, "ec2:VolumeThroughput": undefined }))).toBe(true);
  });

  test("until the launch template exists it may launch nothing", () => {
    const early = instanceRolePermissions("web", { ...scope, launchTemplateId: undefined });
    expect(isAllowed(early, { action: "ec2:RunInstances", resource: instance, context: appLaunch() })).toBe(false);
    expect(isAllowed(early, { action: "iam:PassRole", resource: roleArn("alpha-app-role"), context: { "iam:PassedToService": "ec2.amazonaws.com" } })).toBe(false);
  });

  test("starts, stops and terminates only its app instances", () => {
    for (const action of ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"]) {
      expect(may("web", action, instance, existing())).toBe(true);
      expect(may("web", action, instance, existing({ "aws:ResourceTag/Role": "web+controller", "ec2:InstanceProfile": profileArn("alpha-web-profile") }))).toBe(false);
      expect(may("web", action, instance, existing({ "aws:ResourceTag/Role": "web+controller" }))).toBe(false);
      expect(may("web", action, instance, existing({ "aws:ResourceTag/Deployment": "beta" }))).toBe(false);
      expect(may("web", action, instance, existing({ "ec2:InstanceType": "t3.micro" }))).toBe(false);
      expect(may("web", action, instance, existing({ "ec2:InstanceProfile": profileArn("alpha-builder-profile") }))).toBe(false);
      expect(may("web", action, instance, {})).toBe(false);
    }
  });

  test("tags only at launch, and passes only the app role, only to EC2", () => {
    expect(may("web", "ec2:CreateTags", instance, { "ec2:CreateAction": "RunInstances", "aws:RequestTag/Deployment": "alpha" })).toBe(true);
    expect(may("web", "ec2:CreateTags", instance, { "ec2:CreateAction": "RunInstances", "aws:RequestTag/Deployment": "beta" })).toBe(false);
    expect(may("web", "iam:PassRole", roleArn("alpha-app-role"), { "iam:PassedToService": "ec2.amazonaws.com" })).toBe(true);
    expect(may("web", "iam:PassRole", roleArn("alpha-app-role"), { "iam:PassedToService": "lambda.amazonaws.com" })).toBe(false);
    expect(may("web", "iam:PassRole", roleArn("alpha-web-role"), { "iam:PassedToService": "ec2.amazonaws.com" })).toBe(false);
    expect(may("web", "iam:PassRole", roleArn("alpha-builder-role"), { "iam:PassedToService": "ec2.amazonaws.com" })).toBe(false);
  });
});

describe("the AMI builder", () => {
  test("reads its tarball and writes its marker; nothing else", () => {
    expect(may("builder", "s3:GetObject", tarball)).toBe(true);
    expect(may("builder", "s3:PutObject", s3(names.inBucket, "_bake/abc123-x/done"))).toBe(true);
    expect(may("builder", "s3:PutObject", s3(names.inBucket, "_bake/abc123-x/failed"))).toBe(true);
    expect(may("builder", "s3:PutObject", tarball)).toBe(false);
    expect(may("builder", "s3:GetObject", token)).toBe(false);
    expect(may("builder", "s3:GetObject", upload)).toBe(false);
    for (const object of galleryObjects) expect(may("builder", "s3:GetObject", object)).toBe(false);
    expect(may("builder", "sqs:ReceiveMessage", sqs(names.reqQueue))).toBe(false);
    expect(may("builder", "ec2:DescribeInstances", "*")).toBe(false);
    expect(may("builder", "s3:ListBucket", `arn:aws:s3:::${names.inBucket}`)).toBe(false);
  });
});

test("account and partition come from the role ARN", () => {
  expect(parseRoleArn("arn:aws-cn:iam::123456789012:role/x")).toEqual({ partition: "aws-cn", accountId: "123456789012" });
  expect(() => parseRoleArn("arn:aws:s3:::bucket")).toThrow("not an IAM role ARN");
});

/** The IAM action of each SDK command, where its name is not service:CommandName. */
const ACTION_OF: Record<string, string> = {
  "s3:HeadObject": "s3:GetObject",
  "s3:ListObjectsV2": "s3:ListBucket",
  // A multipart upload is authorised as s3:PutObject, all but its abort.
  "s3:CreateMultipartUpload": "s3:PutObject",
  "s3:UploadPart": "s3:PutObject",
  "s3:CompleteMultipartUpload": "s3:PutObject",
};

/**
 * Which instance role makes each AWS call of the service's code (read from roles/). A call no instance makes on AWS
 * is listed with no role, and why.
 */
const CALLERS: Record<string, InstanceRole[]> = {
  "s3:PutObject": ["web", "app"],
  "s3:GetObject": ["web", "app"],
  // The app instances delete their own job report when they stop (roles/app/job-reporter.ts), the controller those of
  // gone instances (roles/controller/gone-reports.ts).
  "s3:DeleteObject": ["web", "app"],
  // The web role streams uploads longer than a part as multipart uploads, and aborts one whose body failed.
  "s3:AbortMultipartUpload": ["web"],
  // Bucket.count() is only called by scripts/cloud-sim.ts and infra/watch.ts, but S3 answers a read of a missing
  // object 404 only to a caller that may list the bucket (403 otherwise), and the roles read objects that may be missing.
  "s3:ListBucket": ["web", "app"],
  "sqs:SendMessage": ["web", "app"],
  "sqs:ReceiveMessage": ["web", "app"],
  "sqs:DeleteMessage": ["web", "app"],
  // The app instances' heartbeats and releases; the controller hides the dead letters it keeps (roles/controller/dead-letters.ts).
  "sqs:ChangeMessageVisibility": ["web", "app"],
  "sqs:GetQueueAttributes": ["web"],
  "sqs:GetQueueUrl": ["web", "app"],
  "ec2:DescribeInstances": ["web"],
  "ec2:RunInstances": ["web"],
  "ec2:StartInstances": ["web"],
  "ec2:StopInstances": ["web"],
  "ec2:TerminateInstances": ["web"],
  // roles/boot.ts falls back to DescribeTags only when instance metadata tags are off; the launch template turns them on.
  "ec2:DescribeTags": [],
};
/** What a RunInstances with a launch template and tags needs besides itself. */
const IMPLIED: Record<string, string[]> = { "ec2:RunInstances": ["ec2:CreateTags", "iam:PassRole"] };

test("each role is granted exactly the AWS calls its code makes, and every call of the code has its callers listed", () => {
  const root = resolve(import.meta.dir, "../..");
  const made = new Set<string>();
  for (const file of ["index.ts", ...new Glob("roles/**/*.ts").scanSync(root)]) {
    const source = readFileSync(join(root, file), "utf8");
    for (const [, commands, service] of source.matchAll(/import\s*\{([^}]*)\}\s*from\s*"@aws-sdk\/client-([a-z0-9]+)"/g)) {
      for (const [, command] of commands!.matchAll(/\b([A-Z][A-Za-z0-9]+)Command\b/g)) {
        const action = `${service}:${command}`;
        made.add(ACTION_OF[action] ?? action);
      }
    }
  }
  expect(made.size).toBeGreaterThan(10);
  expect([...made].filter((action) => !(action in CALLERS))).toEqual([]);
  for (const role of INSTANCE_ROLES) {
    if (role === "builder") continue;
    const needed = Object.entries(CALLERS).flatMap(([action, callers]) => (callers.includes(role) ? [action, ...(IMPLIED[action] ?? [])] : []));
    const granted = policies[role].Statement.filter((statement) => statement.Effect === "Allow").flatMap((statement) => [statement.Action].flat());
    expect(new Set(granted)).toEqual(new Set(needed));
  }
});

describe("EBS encryption by default under a customer managed key", () => {
  const key = `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
  const withKey = Object.fromEntries(INSTANCE_ROLES.map((role) => [role, instanceRolePermissions(role, { ...scope, ebsKmsKeyArn: key })])) as Record<InstanceRole, PolicyDocument>;
  const grant = (role: InstanceRole, resource: string, context: RequestContext) => isAllowed(withKey[role], { action: "kms:CreateGrant", resource, context });
  const viaEc2 = { "kms:ViaService": "ec2.us-east-1.amazonaws.com", "kms:GrantIsForAWSResource": "true" };

  test("the web role (it starts and launches app instances) may let EC2 use the key for the volumes, and nothing else", () => {
    expect(grant("web", key, viaEc2)).toBe(true);
    expect(grant("web", key, { ...viaEc2, "kms:ViaService": "s3.us-east-1.amazonaws.com" })).toBe(false);
    expect(grant("web", key, { ...viaEc2, "kms:ViaService": "ec2.eu-west-1.amazonaws.com" })).toBe(false);
    expect(grant("web", key, { ...viaEc2, "kms:GrantIsForAWSResource": "false" })).toBe(false);
    expect(grant("web", key, {})).toBe(false);
    expect(grant("web", `arn:aws:kms:us-east-1:${ACCOUNT}:key/another`, viaEc2)).toBe(false);
    expect(grant("app", key, viaEc2)).toBe(false);
    expect(grant("builder", key, viaEc2)).toBe(false);
  });

  test("without such a key, no role has any KMS permission", () => {
    expect(JSON.stringify(policies)).not.toContain("kms:");
  });
});
