/**
 * Bootstrap's decision as data: the desired state of a deployment (a pure function of its configuration), the
 * actual state as read from AWS, and the changes that turn one into the other, in the order they must be made.
 * An empty plan is what makes a second bootstrap a no-op.
 */
import { objectExpiries, resourceNames, type Config, type ObjectExpiry, type ResourceNames } from "../roles/config.ts";
import { API_TOKEN_KEY, DEPLOYMENT_TAG, LONG_POLL_SECONDS, MAX_JOB_MESSAGE_BYTES, WEB_PORT } from "../roles/deployment.ts";
import { ROOT_VOLUME } from "./launch-template.ts";
import type { Network } from "./network.ts";
import {
  INSTANCE_ROLES,
  instanceRoleNames,
  instanceRolePermissions,
  instanceRoleTrustPolicy,
  parseRoleArn,
  type InstanceRole,
  type PolicyDocument,
  type RoleNames,
  type RootVolume,
} from "./policies.ts";
/** Parts of a multipart upload whose writer died (a web process killed mid-upload) are billed until aborted. */
export const ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS = 1;

/** Dead letters are kept as long as SQS allows, for inspection. */
export const DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600;

export type Tags = Record<string, string>;

export interface QueueSpec {
  name: string;
  attributes: Record<string, string>;
  redrive?: { deadLetterQueue: string; maxReceiveCount: number };
}

export interface DesiredState {
  prefix: string;
  region: string;
  tags: Tags;
  names: ResourceNames;
  buckets: string[];
  /**
   * Objects S3 removes after `days` by lifecycle rules: embeddings left by abandoned enrollments, and uploaded photos
   * when uploadRetentionDays is set.
   */
  expiries: ObjectExpiry[];
  /** Every bucket's lifecycle also aborts multipart uploads left incomplete this many days. */
  abortIncompleteUploadsAfterDays: number;
  /** Dead-letter queue first: the request queue's redrive policy names it. */
  queues: QueueSpec[];
  securityGroup: { name: string; description: string; port: number; cidr: string };
  roles: Record<InstanceRole, RoleNames>;
  launchTemplate: { name: string; instanceType: string; rootVolume: RootVolume };
  /**
   * The admin token's private object. `sha256` is the digest of FACEFLEET_API_TOKEN when it is set: a different token
   * there is replaced. Without it any token there is kept. The secret itself is never part of the plan.
   */
  apiToken: { bucket: string; key: string; sha256?: string };
  /** The VPC and subnets found for the deployment; undefined where none is needed (teardown). */
  network?: Network;
  /** The customer managed key of the account's EBS encryption by default, which the web role may grant EC2. */
  ebsKmsKeyArn?: string;
}

export interface BucketActual {
  publicAccessBlocked: boolean;
  encrypted: boolean;
  tags: Tags;
  /** The bucket's enabled lifecycle expirations by prefix; undefined: none. */
  expirations?: { prefix: string; days: number }[];
  /** The days of its enabled whole-bucket AbortIncompleteMultipartUpload rule, if any. */
  abortIncompleteUploadsAfterDays?: number;
}

export interface QueueActual {
  url: string;
  attributes: Record<string, string>;
  tags: Tags;
}

export interface IngressRule {
  protocol: string;
  fromPort: number;
  toPort: number;
  cidr: string;
}

export interface SecurityGroupActual {
  id: string;
  ingress: IngressRule[];
  tags: Tags;
}

export interface RoleActual {
  arn: string;
  trustPolicy: unknown;
  /** The inline permissions policy, if it exists. */
  permissions?: unknown;
  tags: Tags;
}

export interface InstanceProfileActual {
  arn: string;
  roleNames: string[];
  tags: Tags;
}

export interface VolumeActual {
  deviceName?: string;
  sizeGiB?: number;
  type?: string;
  iops?: number;
  throughputMiBps?: number;
  deleteOnTermination?: boolean;
}

export interface LaunchTemplateActual {
  id: string;
  instanceType?: string;
  profileName?: string;
  securityGroupIds: string[];
  /** The subnet of its network interface, when it names one. */
  subnetId?: string;
  httpTokens?: string;
  instanceMetadataTags?: string;
  /** Its block device mappings, as DescribeLaunchTemplateVersions reports them. */
  volumes: VolumeActual[];
  /** Tags the template puts on the instances it launches. */
  instanceTags: Tags;
  tags: Tags;
}

/** What exists now; a missing key means the resource does not exist. */
export interface ActualState {
  buckets: Record<string, BucketActual | undefined>;
  queues: Record<string, QueueActual | undefined>;
  securityGroup?: SecurityGroupActual;
  /** By role name. */
  roles: Record<string, RoleActual | undefined>;
  /** By instance profile name. */
  instanceProfiles: Record<string, InstanceProfileActual | undefined>;
  launchTemplate?: LaunchTemplateActual;
  /** The digest of the stored admin token, if there is one. */
  apiToken?: { sha256: string };
}

export type ResourceKind = "bucket" | "queue" | "security-group" | "role" | "instance-profile" | "launch-template";

export type Change =
  | { kind: "create"; resource: ResourceKind; name: string }
  | { kind: "tag"; resource: ResourceKind; name: string }
  | { kind: "block-public-access"; name: string }
  | { kind: "encrypt-bucket"; name: string }
  /** The bucket's whole lifecycle configuration: the abort rule, and the bucket's expiries (none, one or several). */
  | { kind: "set-lifecycle"; name: string; abortIncompleteUploadsAfterDays: number; expiries: Omit<ObjectExpiry, "bucket">[] }
  | { kind: "set-queue-attributes"; name: string; attributes: string[] }
  | { kind: "authorize-ingress"; name: string; rule: IngressRule }
  | { kind: "revoke-ingress"; name: string; rule: IngressRule }
  | { kind: "update-trust-policy"; name: string }
  | { kind: "put-role-policy"; name: string; policyName: string; role: InstanceRole }
  | { kind: "add-role-to-instance-profile"; name: string; roleName: string }
  | { kind: "update-launch-template"; name: string; fields: string[] }
  /** `name` is the bucket. Created: none was there (the token is FACEFLEET_API_TOKEN, else a new one); replaced: FACEFLEET_API_TOKEN differs. */
  | { kind: "put-api-token"; name: string; key: string; reason: "create" | "replace" };

export interface DesiredOptions {
  region: string;
  ingressCidr: string;
  appInstanceType: string;
  /** FACEFLEET_API_TOKEN, when set. */
  apiToken?: string;
  network?: Network;
  ebsKmsKeyArn?: string;
}

export const sha256Hex = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex");

export function desiredState(config: Config, options: DesiredOptions): DesiredState {
  const names = resourceNames(config);
  const prefix = config.prefix;
  const longPoll = { ReceiveMessageWaitTimeSeconds: String(LONG_POLL_SECONDS) };
  return {
    prefix,
    region: options.region,
    tags: { [DEPLOYMENT_TAG]: prefix },
    names,
    buckets: [...new Set([names.inBucket, names.outBucket, names.galleryBucket, names.reportsBucket])],
    expiries: objectExpiries(config),
    abortIncompleteUploadsAfterDays: ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS,
    queues: [
      { name: names.deadLetterQueue, attributes: { MessageRetentionPeriod: String(DEAD_LETTER_RETENTION_SECONDS) } },
      {
        name: names.reqQueue,
        attributes: {
          ...longPoll,
          MaximumMessageSize: String(MAX_JOB_MESSAGE_BYTES),
          VisibilityTimeout: String(config.visibilityTimeoutSeconds),
        },
        redrive: { deadLetterQueue: names.deadLetterQueue, maxReceiveCount: config.maxReceives },
      },
      { name: names.respQueue, attributes: longPoll },
    ],
    securityGroup: { name: `${prefix}-web`, description: `facefleet ${prefix}: web tier on port ${WEB_PORT}`, port: WEB_PORT, cidr: options.ingressCidr },
    roles: instanceRoleNames(prefix),
    launchTemplate: { name: names.launchTemplate, instanceType: options.appInstanceType, rootVolume: ROOT_VOLUME },
    apiToken: { bucket: names.inBucket, key: API_TOKEN_KEY, ...(options.apiToken !== undefined && { sha256: sha256Hex(options.apiToken) }) },
    ...(options.network && { network: options.network }),
    ...(options.ebsKmsKeyArn && { ebsKmsKeyArn: options.ebsKmsKeyArn }),
  };
}

/** A role's permissions; the web role's name the launch template by its id, so they are put once it exists. */
export function desiredPermissions(desired: DesiredState, role: InstanceRole, roleArn: string, launchTemplateId: string | undefined): PolicyDocument {
  const { partition, accountId } = parseRoleArn(roleArn);
  return instanceRolePermissions(role, {
    prefix: desired.prefix,
    partition,
    accountId,
    region: desired.region,
    names: desired.names,
    roles: desired.roles,
    appInstanceType: desired.launchTemplate.instanceType,
    appRootVolume: desired.launchTemplate.rootVolume,
    launchTemplateId,
    ebsKmsKeyArn: desired.ebsKmsKeyArn,
  });
}

export function redrivePolicy(deadLetterArn: string, maxReceiveCount: number): string {
  return JSON.stringify({ deadLetterTargetArn: deadLetterArn, maxReceiveCount });
}

function redriveMatches(actual: string | undefined, redrive: NonNullable<QueueSpec["redrive"]>): boolean {
  if (!actual) return false;
  const parsed = JSON.parse(actual) as { deadLetterTargetArn?: string; maxReceiveCount?: number | string };
  return parsed.deadLetterTargetArn?.endsWith(`:${redrive.deadLetterQueue}`) === true && Number(parsed.maxReceiveCount) === redrive.maxReceiveCount;
}

const expirationKeys = (rules: readonly { prefix: string; days: number }[]) => rules.map((rule) => `${rule.days} ${rule.prefix}`).sort();
const sameExpirations = (actual: readonly { prefix: string; days: number }[], wanted: readonly { prefix: string; days: number }[]) =>
  Bun.deepEquals(expirationKeys(actual), expirationKeys(wanted));
const hasTags = (actual: Tags, wanted: Tags) => Object.entries(wanted).every(([key, value]) => actual[key] === value);
const sameRule = (a: IngressRule, b: IngressRule) => a.protocol === b.protocol && a.fromPort === b.fromPort && a.toPort === b.toPort && a.cidr === b.cidr;

/** The template's mappings are the root volume alone, as desired (a volume more, or a bigger one, is drift). */
function isRootVolumeOnly(actual: VolumeActual[], root: RootVolume): boolean {
  const wanted: VolumeActual = { deviceName: root.deviceName, sizeGiB: root.sizeGiB, type: root.type, iops: root.iops, throughputMiBps: root.throughputMiBps, deleteOnTermination: true };
  return actual.length === 1 && Bun.deepEquals(actual[0], wanted);
}

export function planChanges(desired: DesiredState, actual: ActualState): Change[] {
  const changes: Change[] = [];
  const { tags } = desired;

  for (const name of desired.buckets) {
    const bucket = actual.buckets[name];
    if (!bucket) changes.push({ kind: "create", resource: "bucket", name });
    if (!bucket?.publicAccessBlocked) changes.push({ kind: "block-public-access", name });
    if (!bucket?.encrypted) changes.push({ kind: "encrypt-bucket", name });
    if (!bucket || !hasTags(bucket.tags, tags)) changes.push({ kind: "tag", resource: "bucket", name });
    const expiries = desired.expiries.filter((expiry) => expiry.bucket === name).map(({ bucket: _, ...expiry }) => expiry);
    // The configuration is replaced whole, so an expiration no longer wanted (uploads kept again) goes too.
    const expirationsMatch = sameExpirations(bucket?.expirations ?? [], expiries);
    if (bucket?.abortIncompleteUploadsAfterDays !== desired.abortIncompleteUploadsAfterDays || !expirationsMatch) {
      changes.push({ kind: "set-lifecycle", name, abortIncompleteUploadsAfterDays: desired.abortIncompleteUploadsAfterDays, expiries });
    }
  }
  const token = desired.apiToken;
  if (!actual.apiToken) changes.push({ kind: "put-api-token", name: token.bucket, key: token.key, reason: "create" });
  else if (token.sha256 !== undefined && token.sha256 !== actual.apiToken.sha256) changes.push({ kind: "put-api-token", name: token.bucket, key: token.key, reason: "replace" });

  for (const spec of desired.queues) {
    const queue = actual.queues[spec.name];
    if (!queue) {
      changes.push({ kind: "create", resource: "queue", name: spec.name });
      continue;
    }
    const differing = Object.entries(spec.attributes)
      .filter(([key, value]) => queue.attributes[key] !== value)
      .map(([key]) => key);
    if (spec.redrive && !redriveMatches(queue.attributes.RedrivePolicy, spec.redrive)) differing.push("RedrivePolicy");
    if (differing.length > 0) changes.push({ kind: "set-queue-attributes", name: spec.name, attributes: differing });
    if (!hasTags(queue.tags, tags)) changes.push({ kind: "tag", resource: "queue", name: spec.name });
  }

  const group = desired.securityGroup;
  const wantedRule: IngressRule = { protocol: "tcp", fromPort: group.port, toPort: group.port, cidr: group.cidr };
  if (!actual.securityGroup) {
    changes.push({ kind: "create", resource: "security-group", name: group.name });
    changes.push({ kind: "authorize-ingress", name: group.name, rule: wantedRule });
  } else {
    if (!actual.securityGroup.ingress.some((rule) => sameRule(rule, wantedRule))) {
      changes.push({ kind: "authorize-ingress", name: group.name, rule: wantedRule });
    }
    for (const rule of actual.securityGroup.ingress.filter((rule) => !sameRule(rule, wantedRule))) {
      changes.push({ kind: "revoke-ingress", name: group.name, rule });
    }
    if (!hasTags(actual.securityGroup.tags, tags)) changes.push({ kind: "tag", resource: "security-group", name: group.name });
  }

  for (const role of INSTANCE_ROLES) {
    const { name, profileName } = desired.roles[role];
    const current = actual.roles[name];
    if (!current) {
      changes.push({ kind: "create", resource: "role", name });
    } else {
      if (!Bun.deepEquals(current.trustPolicy, instanceRoleTrustPolicy())) changes.push({ kind: "update-trust-policy", name });
      if (!hasTags(current.tags, tags)) changes.push({ kind: "tag", resource: "role", name });
    }
    const addRole: Change = { kind: "add-role-to-instance-profile", name: profileName, roleName: name };
    const profile = actual.instanceProfiles[profileName];
    if (!profile) {
      changes.push({ kind: "create", resource: "instance-profile", name: profileName }, addRole);
    } else {
      if (!profile.roleNames.includes(name)) changes.push(addRole);
      if (!hasTags(profile.tags, tags)) changes.push({ kind: "tag", resource: "instance-profile", name: profileName });
    }
  }

  const template = desired.launchTemplate;
  const current = actual.launchTemplate;
  if (!current) {
    changes.push({ kind: "create", resource: "launch-template", name: template.name });
  } else {
    const fields: string[] = [];
    if (current.instanceType !== template.instanceType) fields.push("InstanceType");
    if (current.profileName !== desired.roles.app.profileName) fields.push("IamInstanceProfile");
    const groupId = actual.securityGroup?.id;
    if (!groupId || current.securityGroupIds.length !== 1 || current.securityGroupIds[0] !== groupId) fields.push("SecurityGroupIds");
    if (current.subnetId !== desired.network?.subnetIds[0]) fields.push("NetworkInterfaces");
    if (current.httpTokens !== "required" || current.instanceMetadataTags !== "enabled") fields.push("MetadataOptions");
    if (!hasTags(current.instanceTags, tags)) fields.push("TagSpecifications");
    if (!isRootVolumeOnly(current.volumes, template.rootVolume)) fields.push("BlockDeviceMappings");
    if (fields.length > 0) changes.push({ kind: "update-launch-template", name: template.name, fields });
    if (!hasTags(current.tags, tags)) changes.push({ kind: "tag", resource: "launch-template", name: template.name });
  }

  // Last: the web role's policy names the launch template, which may only just have been created.
  for (const role of INSTANCE_ROLES) {
    const { name, policyName } = desired.roles[role];
    const current = actual.roles[name];
    const templateId = actual.launchTemplate?.id;
    const upToDate = current !== undefined && (role !== "web" || templateId !== undefined) && Bun.deepEquals(current.permissions, desiredPermissions(desired, role, current.arn, templateId));
    if (!upToDate) changes.push({ kind: "put-role-policy", name, policyName, role });
  }
  return changes;
}

export function describeChange(change: Change): string {
  switch (change.kind) {
    case "create":
      return `create ${change.resource} ${change.name}`;
    case "tag":
      return `tag ${change.resource} ${change.name}`;
    case "block-public-access":
      return `block public access to bucket ${change.name}`;
    case "encrypt-bucket":
      return `turn on default encryption (SSE-S3) of bucket ${change.name}`;
    case "set-lifecycle":
      return [`set the lifecycle of bucket ${change.name}: abort multipart uploads left incomplete after ${change.abortIncompleteUploadsAfterDays} day(s)`, ...describeExpiries(change.expiries)].join("; ");
    case "set-queue-attributes":
      return `set ${change.attributes.join(", ")} of queue ${change.name}`;
    case "authorize-ingress":
      return `allow ${change.rule.protocol} ${change.rule.fromPort} from ${change.rule.cidr} into security group ${change.name}`;
    case "revoke-ingress":
      return `revoke ${change.rule.protocol} ${change.rule.fromPort}-${change.rule.toPort} from ${change.rule.cidr} in security group ${change.name}`;
    case "update-trust-policy":
      return `reset the trust policy of role ${change.name} to EC2 only`;
    case "put-role-policy":
      return `put the ${change.role} instances' least-privilege policy ${change.policyName} on role ${change.name}`;
    case "add-role-to-instance-profile":
      return `add role ${change.roleName} to instance profile ${change.name}`;
    case "update-launch-template":
      return `new default version of launch template ${change.name} (${change.fields.join(", ")})`;
    case "put-api-token":
      return change.reason === "create"
        ? `store the admin token as private object s3://${change.name}/${change.key} (FACEFLEET_API_TOKEN, else a new one printed once)`
        : `replace the admin token at s3://${change.name}/${change.key} with FACEFLEET_API_TOKEN`;
  }
}

const EXPIRING: Record<Exclude<ObjectExpiry["what"], "uploads">, string> = {
  embeddings: "embeddings of abandoned enrollments",
  "api-results": "faces results a web process died before reading",
};

function describeExpiries(expiries: Omit<ObjectExpiry, "bucket">[]): string[] {
  const uploads = expiries.filter((expiry) => expiry.what === "uploads");
  return [
    ...expiries.flatMap(({ what, prefix, days }) => (what === "uploads" ? [] : [`expire objects under ${prefix} after ${days} day(s) (${EXPIRING[what]})`])),
    ...(uploads.length > 0
      ? [`expire uploaded photos (keys beginning with ${uploads.map((expiry) => expiry.prefix).join("")}, one rule each; not _secrets/ or _bake/) after ${uploads[0]!.days} day(s) (uploadRetentionDays)`]
      : []),
  ];
}
