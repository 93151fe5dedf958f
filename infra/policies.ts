/**
 * The IAM documents of a deployment's three instance roles, as pure functions of its names: the trust policy that
 * lets EC2 assume each role, and one least-privilege permissions policy per role.
 * - web (the web+controller instance, also `Role=web` and `Role=controller` apart): uploads into the input bucket,
 *   the admin token (read), the recognition keys' hashes (read and rewrite), the gallery's manifest, segments and log
 *   (read and write; segments and log entries deleted by compaction; the legacy blob read, deleted once migrated, or
 *   kept aside when damaged), faces results too large for a reply (read and deleted), jobs out and replies in, its leases, the
 *   dead-letter queue's drain (jobs sent again,
 *   job_failed answered), the job reports (read, and deleted once their instance is gone), and the app fleet: only instances of the deployment's
 *   launch template, of the app instance type, with the app profile, tagged as its app instances.
 * - app: input images (not the token, the keys or the bake), the gallery (read), embeddings and results (write, never the
 *   gallery), jobs in, replies and dead letters out. No EC2, no IAM.
 * - builder (the AMI builder): its tarball (read) and its markers (write).
 */
import {
  API_KEYS_KEY,
  API_RESULT_KEY_PREFIX,
  API_TOKEN_KEY,
  APP_ROLE_TAG_VALUE,
  DEPLOYMENT_TAG,
  EMBEDDING_KEY_PREFIX,
  GALLERY_LOG_PREFIX,
  GALLERY_MANIFEST_KEY,
  GALLERY_PREFIX,
  GALLERY_SEGMENT_PREFIX,
  JOB_REPORTS_PREFIX,
  LEGACY_GALLERY_KEY,
  LEASE_KEY_PREFIX,
  ROLE_TAG,
  UNREADABLE_GALLERY_KEY_PREFIX,
} from "../roles/deployment.ts";
import type { ResourceNames } from "../roles/config.ts";

export interface PolicyStatement {
  Sid: string;
  Effect: "Allow" | "Deny";
  Principal?: { Service: string };
  Action: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

export const INSTANCE_ROLES = ["web", "app", "builder"] as const;
export type InstanceRole = (typeof INSTANCE_ROLES)[number];

export interface RoleNames {
  name: string;
  policyName: string;
  profileName: string;
}

/** `<prefix>-<role>-role` with inline policy `<prefix>-<role>-policy`, in instance profile `<prefix>-<role>-profile`. */
export function instanceRoleNames(prefix: string): Record<InstanceRole, RoleNames> {
  const names = (role: InstanceRole): RoleNames => ({ name: `${prefix}-${role}-role`, policyName: `${prefix}-${role}-policy`, profileName: `${prefix}-${role}-profile` });
  return { web: names("web"), app: names("app"), builder: names("builder") };
}

/** Where bake-ami puts the builder's tarball and where the builder reports: `_bake/<bake id>/<file>` in the input bucket. */
export const BAKE_KEY_PREFIX = "_bake/";
export const BAKE_TARBALL = "facefleet.tar.gz";
export const BAKE_MARKERS = ["done", "failed"] as const;

/** The launch template's root volume: what an app instance's volumes may be at most (infra/launch-template.ts). */
export interface RootVolume {
  deviceName: string;
  sizeGiB: number;
  type: "gp3";
  iops: number;
  throughputMiBps: number;
}

/** Where the deployment lives; the account and partition are read from a role's own ARN. */
export interface PolicyScope {
  prefix: string;
  partition: string;
  region: string;
  accountId: string;
  names: ResourceNames;
  roles: Record<InstanceRole, RoleNames>;
  appInstanceType: string;
  appRootVolume: RootVolume;
  /** The launch template the controller launches from; until it exists the web role may launch nothing. */
  launchTemplateId?: string;
  /** The customer managed KMS key of the account's EBS encryption by default, if it has one. */
  ebsKmsKeyArn?: string;
}

export function instanceRoleTrustPolicy(): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [{ Sid: "Ec2AssumesRole", Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
  };
}

/** Splits `arn:<partition>:iam::<account>:role/<name>` into the parts the permissions policies need. */
export function parseRoleArn(arn: string): { partition: string; accountId: string } {
  const match = /^arn:([^:]+):iam::(\d{12}):role\//.exec(arn);
  if (!match) throw new Error(`not an IAM role ARN: ${arn}`);
  return { partition: match[1]!, accountId: match[2]! };
}

/** Only the secrets' prefix of the input bucket is private: the admin token (bootstrap's) and the recognition keys (the web role's). */
const SECRETS_PREFIX = API_TOKEN_KEY.slice(0, API_TOKEN_KEY.lastIndexOf("/") + 1);

function arns(scope: PolicyScope) {
  const { partition, region, accountId, names } = scope;
  const object = (bucket: string, key: string) => `arn:${partition}:s3:::${bucket}/${key}`;
  return {
    object,
    queue: (name: string) => `arn:${partition}:sqs:${region}:${accountId}:${name}`,
    ec2: (resource: string) => `arn:${partition}:ec2:${region}:${accountId}:${resource}`,
    image: `arn:${partition}:ec2:${region}::image/*`,
    role: (name: string) => `arn:${partition}:iam::${accountId}:role/${name}`,
    profile: (name: string) => `arn:${partition}:iam::${accountId}:instance-profile/${name}`,
    /** What no instance but the web role may read in the input bucket: the secrets and the bake. */
    privateInputs: [object(names.inBucket, `${SECRETS_PREFIX}*`), object(names.inBucket, `${BAKE_KEY_PREFIX}*`)],
    /** What only bootstrap and bake-ami put in the input bucket: the admin token and the bake. */
    operatorInputs: [object(names.inBucket, API_TOKEN_KEY), object(names.inBucket, `${BAKE_KEY_PREFIX}*`)],
  };
}

export function instanceRolePermissions(role: InstanceRole, scope: PolicyScope): PolicyDocument {
  const statements = { web: webStatements, app: appStatements, builder: builderStatements }[role](scope);
  return { Version: "2012-10-17", Statement: statements };
}

/**
 * S3 answers a GET or HEAD of a missing object 404 only to a caller that may list the bucket, and 403 to anyone else;
 * the service reads objects that may not exist yet (the gallery before the first enrollment, the token before
 * bootstrap stored it, an input removed under a retried job) and tells missing from forbidden by that answer.
 */
const listBuckets = (scope: PolicyScope): PolicyStatement => ({
  Sid: "TellMissingFromForbidden",
  Effect: "Allow",
  Action: "s3:ListBucket",
  Resource: [...new Set([scope.names.inBucket, scope.names.galleryBucket])].map((bucket) => `arn:${scope.partition}:s3:::${bucket}`),
});

/** The objects of the segmented gallery (roles/gallery-store.ts): its manifest, its segments and its log. */
function galleryObjects(scope: PolicyScope): { manifest: string; segments: string; log: string } {
  const object = (key: string) => arns(scope).object(scope.names.galleryBucket, key);
  return { manifest: object(GALLERY_MANIFEST_KEY), segments: object(`${GALLERY_SEGMENT_PREFIX}*`), log: object(`${GALLERY_LOG_PREFIX}*`) };
}

function appStatements(scope: PolicyScope): PolicyStatement[] {
  const { names } = scope;
  const arn = arns(scope);
  const { manifest, segments, log } = galleryObjects(scope);
  return [
    listBuckets(scope),
    { Sid: "ReadInputImages", Effect: "Allow", Action: "s3:GetObject", Resource: arn.object(names.inBucket, "*") },
    { Sid: "NeverTheSecretsOrTheBake", Effect: "Deny", Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], Resource: arn.privateInputs },
    { Sid: "ReadGallery", Effect: "Allow", Action: "s3:GetObject", Resource: [manifest, segments, log] },
    {
      Sid: "WriteResultsAndEmbeddings",
      Effect: "Allow",
      Action: "s3:PutObject",
      Resource: [...new Set([arn.object(names.outBucket, "*"), arn.object(names.galleryBucket, `${EMBEDDING_KEY_PREFIX}*`)])],
    },
    // The gallery shares the output bucket by default: results may go anywhere in it except over the gallery.
    { Sid: "NeverWriteGallery", Effect: "Deny", Action: ["s3:PutObject", "s3:DeleteObject"], Resource: arn.object(names.galleryBucket, `${GALLERY_PREFIX}*`) },
    {
      Sid: "TakeJobs",
      Effect: "Allow",
      Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
      Resource: arn.queue(names.reqQueue),
    },
    // A message that is not a job is moved to the dead-letter queue (roles/app/consumer.ts).
    { Sid: "SendRepliesAndDeadLetters", Effect: "Allow", Action: "sqs:SendMessage", Resource: [arn.queue(names.respQueue), arn.queue(names.deadLetterQueue)] },
    {
      Sid: "FindQueues",
      Effect: "Allow",
      Action: "sqs:GetQueueUrl",
      Resource: [names.reqQueue, names.respQueue, names.deadLetterQueue].map(arn.queue),
    },
    // Its report of the jobs it holds, and no other instance's: the key ends with the caller's own ARN.
    {
      Sid: "WriteOwnJobReport",
      Effect: "Allow",
      Action: ["s3:PutObject", "s3:DeleteObject"],
      Resource: arn.object(names.reportsBucket, `${JOB_REPORTS_PREFIX}\${ec2:SourceInstanceARN}`),
    },
  ];
}

function webStatements(scope: PolicyScope): PolicyStatement[] {
  const { names, prefix } = scope;
  const arn = arns(scope);
  const { manifest, segments, log } = galleryObjects(scope);
  const legacyGallery = arn.object(names.galleryBucket, LEGACY_GALLERY_KEY);
  const statements: PolicyStatement[] = [
    listBuckets(scope),
    // An upload is put before its job is sent, and deleted if the send fails (roles/web/jobs.ts).
    { Sid: "PutUploads", Effect: "Allow", Action: ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], Resource: arn.object(names.inBucket, "*") },
    { Sid: "NeverWriteTokenOrBake", Effect: "Deny", Action: ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], Resource: arn.operatorInputs },
    { Sid: "ReadApiToken", Effect: "Allow", Action: "s3:GetObject", Resource: arn.object(names.inBucket, API_TOKEN_KEY) },
    // The recognition keys' document: re-read, and rewritten with conditional puts (roles/web/api-key-store.ts).
    { Sid: "ReadWriteRecognitionKeys", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject"], Resource: arn.object(names.inBucket, API_KEYS_KEY) },
    // Changes are appended to the log, the manifest rewritten at a compaction, which writes segments, deletes the
    // segments it replaced and the log it covered, and erases removed faces' logged embeddings (roles/gallery-store.ts).
    { Sid: "ReadWriteGallery", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject"], Resource: [manifest, segments, log] },
    { Sid: "CompactGallery", Effect: "Allow", Action: "s3:DeleteObject", Resource: [segments, log] },
    // The single-blob gallery of earlier versions: read once, written as segments, then deleted.
    { Sid: "MigrateLegacyGallery", Effect: "Allow", Action: ["s3:GetObject", "s3:DeleteObject"], Resource: legacyGallery },
    // A legacy gallery it cannot read is kept aside before the web role starts with an empty one (roles/gallery-store.ts).
    { Sid: "KeepUnreadableGalleryAside", Effect: "Allow", Action: "s3:PutObject", Resource: arn.object(names.galleryBucket, `${UNREADABLE_GALLERY_KEY_PREFIX}*`) },
    // An enrollment reads the embedding an app instance wrote, then deletes it (roles/gallery-store.ts).
    { Sid: "TakeEmbeddings", Effect: "Allow", Action: ["s3:GetObject", "s3:DeleteObject"], Resource: arn.object(names.galleryBucket, `${EMBEDDING_KEY_PREFIX}*`) },
    // A faces result too large for its reply is read, then deleted (roles/web/jobs.ts); nothing else of the output bucket.
    { Sid: "TakeLargeResults", Effect: "Allow", Action: ["s3:GetObject", "s3:DeleteObject"], Resource: arn.object(names.outBucket, `${API_RESULT_KEY_PREFIX}*`) },
    { Sid: "SendJobs", Effect: "Allow", Action: "sqs:SendMessage", Resource: arn.queue(names.reqQueue) },
    // The controller scales on the request queue's depth.
    { Sid: "ReadJobQueueDepth", Effect: "Allow", Action: "sqs:GetQueueAttributes", Resource: arn.queue(names.reqQueue) },
    { Sid: "TakeReplies", Effect: "Allow", Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage"], Resource: arn.queue(names.respQueue) },
    // The controller drains the dead-letter queue (roles/controller/dead-letters.ts): a job goes back to the request
    // queue (SendJobs); past its last redrive its caller gets job_failed and a marked copy is kept.
    {
      Sid: "DrainDeadLetters",
      Effect: "Allow",
      Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage"],
      Resource: arn.queue(names.deadLetterQueue),
    },
    { Sid: "AnswerFailedJobs", Effect: "Allow", Action: "sqs:SendMessage", Resource: arn.queue(names.respQueue) },
    { Sid: "FindQueues", Effect: "Allow", Action: "sqs:GetQueueUrl", Resource: [names.reqQueue, names.respQueue, names.deadLetterQueue].map(arn.queue) },
    // EC2 Describe* actions support no resource-level permissions: AWS requires "*" here.
    { Sid: "ListFleet", Effect: "Allow", Action: "ec2:DescribeInstances", Resource: "*" },
    // The controller scales in only once the app instances' reports say they hold no job (a missing one is a 404),
    // and deletes the reports of instances that are gone (roles/controller/gone-reports.ts).
    { Sid: "ReadAndRemoveJobReports", Effect: "Allow", Action: ["s3:GetObject", "s3:DeleteObject"], Resource: arn.object(names.reportsBucket, `${JOB_REPORTS_PREFIX}*`) },
    { Sid: "TellMissingJobReports", Effect: "Allow", Action: "s3:ListBucket", Resource: `arn:${scope.partition}:s3:::${names.reportsBucket}` },
    // The web role and the controller each hold a lease, renewed with conditional puts (roles/cloud/lease.ts).
    { Sid: "HoldLeases", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject"], Resource: arn.object(names.reportsBucket, `${LEASE_KEY_PREFIX}*`) },
  ];
  const appInstance = {
    [`aws:ResourceTag/${DEPLOYMENT_TAG}`]: prefix,
    [`aws:ResourceTag/${ROLE_TAG}`]: APP_ROLE_TAG_VALUE,
    "ec2:InstanceType": scope.appInstanceType,
  };
  const appProfile = { "ec2:InstanceProfile": arn.profile(scope.roles.app.profileName) };
  statements.push({
    Sid: "StartStopTerminateAppInstances",
    Effect: "Allow",
    Action: ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"],
    Resource: arn.ec2("instance/*"),
    Condition: { StringEquals: appInstance, ArnEquals: appProfile },
  });
  if (scope.ebsKmsKeyArn !== undefined) {
    // EC2 creates a grant on the key for each volume, as the caller of a start or launch: only through EC2, for its volumes.
    statements.push({
      Sid: "EncryptAppVolumesByDefault",
      Effect: "Allow",
      Action: "kms:CreateGrant",
      Resource: scope.ebsKmsKeyArn,
      Condition: { StringEquals: { "kms:ViaService": `ec2.${scope.region}.amazonaws.com` }, Bool: { "kms:GrantIsForAWSResource": "true" } },
    });
  }
  if (scope.launchTemplateId === undefined) return statements;
  // RunInstances authorizes every resource of the launch. The key ec2:LaunchTemplate is set on each of them when the
  // launch uses a template; the new instance must also be of the app type, with the app profile and the app tags.
  const fromTemplate = { "ec2:LaunchTemplate": arn.ec2(`launch-template/${scope.launchTemplateId}`) };
  statements.push(
    {
      Sid: "LaunchAppInstances",
      Effect: "Allow",
      Action: "ec2:RunInstances",
      Resource: arn.ec2("instance/*"),
      Condition: {
        ArnLike: fromTemplate,
        ArnEquals: appProfile,
        // The template's IMDSv2 only: a caller's MetadataOptions override it, and IMDSv1 would hand the app role's
        // credentials to any request the instance can be made to send; a hop limit above 1 would hand them to a
        // container or a forwarding host on it. Shared tenancy only: dedicated hosts and instances bill by the host.
        StringEquals: {
          "ec2:InstanceType": scope.appInstanceType,
          "ec2:MetadataHttpTokens": "required",
          "ec2:Tenancy": "default",
          [`aws:RequestTag/${DEPLOYMENT_TAG}`]: prefix,
          [`aws:RequestTag/${ROLE_TAG}`]: APP_ROLE_TAG_VALUE,
        },
        NumericLessThanEquals: { "ec2:MetadataHttpPutResponseHopLimit": "1" },
      },
    },
    {
      Sid: "LaunchWithTemplateResources",
      Effect: "Allow",
      Action: "ec2:RunInstances",
      Resource: [
        arn.ec2(`launch-template/${scope.launchTemplateId}`),
        arn.ec2("subnet/*"),
        arn.ec2("network-interface/*"),
      ],
      Condition: { ArnLike: fromTemplate },
    },
    // Each volume the launch creates (the AMI's mapping under the template's and a caller's BlockDeviceMappings, which
    // override it device by device): gp3, no larger, faster or more provisioned than the template's root volume. A
    // mapping that leaves a setting out sets no key, and a missing key fails these conditions: a caller's mapping must
    // state them all. The number of volumes no key bounds (EC2's attachment limit per instance does).
    {
      Sid: "LaunchBoundedVolumes",
      Effect: "Allow",
      Action: "ec2:RunInstances",
      Resource: arn.ec2("volume/*"),
      Condition: {
        ArnLike: fromTemplate,
        StringEquals: { "ec2:VolumeType": scope.appRootVolume.type },
        NumericLessThanEquals: { "ec2:VolumeSize": String(scope.appRootVolume.sizeGiB) },
        // Whether EC2 sets these two for a volume whose mapping leaves them at gp3's baseline is not documented: a
        // missing key must not refuse the controller's every launch, and a raised one (which the caller must state) is bounded.
        NumericLessThanEqualsIfExists: {
          "ec2:VolumeIops": String(scope.appRootVolume.iops),
          "ec2:VolumeThroughput": String(scope.appRootVolume.throughputMiBps),
        },
      },
    },
    // The caller picks the subnet (the controller spreads over zones by replacing the template's network interface),
    // never the group: only the deployment's, which bootstrap tags. No condition key bounds UserData: the image ignores it.
    {
      Sid: "LaunchInDeploymentGroup",
      Effect: "Allow",
      Action: "ec2:RunInstances",
      Resource: arn.ec2("security-group/*"),
      Condition: { ArnLike: fromTemplate, StringEquals: { [`aws:ResourceTag/${DEPLOYMENT_TAG}`]: prefix } },
    },
    {
      Sid: "LaunchDeploymentImage",
      Effect: "Allow",
      Action: "ec2:RunInstances",
      Resource: arn.image,
      Condition: { ArnLike: fromTemplate, StringEquals: { [`aws:ResourceTag/${DEPLOYMENT_TAG}`]: prefix } },
    },
    {
      Sid: "TagOnLaunch",
      Effect: "Allow",
      Action: "ec2:CreateTags",
      Resource: [arn.ec2("instance/*"), arn.ec2("volume/*")],
      Condition: { StringEquals: { "ec2:CreateAction": "RunInstances", [`aws:RequestTag/${DEPLOYMENT_TAG}`]: prefix } },
    },
    {
      Sid: "PassAppRoleToEc2",
      Effect: "Allow",
      Action: "iam:PassRole",
      Resource: arn.role(scope.roles.app.name),
      Condition: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
    },
  );
  return statements;
}

function builderStatements(scope: PolicyScope): PolicyStatement[] {
  const bake = (file: string) => arns(scope).object(scope.names.inBucket, `${BAKE_KEY_PREFIX}*/${file}`);
  return [
    { Sid: "ReadTarball", Effect: "Allow", Action: "s3:GetObject", Resource: bake(BAKE_TARBALL) },
    { Sid: "WriteMarker", Effect: "Allow", Action: "s3:PutObject", Resource: BAKE_MARKERS.map(bake) },
  ];
}
