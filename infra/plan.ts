/**
 * Bootstrap's decision as data: the desired state of a deployment (a pure function of its configuration), the
 * actual state as read from AWS, and the changes that turn one into the other, in the order they must be made.
 * An empty plan is what makes a second bootstrap a no-op.
 */
import { resourceNames, type Config, type ResourceNames } from "../roles/config.ts";
import { DEPLOYMENT_TAG, LONG_POLL_SECONDS, MAX_JOB_MESSAGE_BYTES, WEB_PORT } from "../roles/deployment.ts";
import { instanceRolePermissions, instanceRoleTrustPolicy, parseRoleArn, type PolicyDocument } from "./policies.ts";
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
  /** Dead-letter queue first: the request queue's redrive policy names it. */
  queues: QueueSpec[];
  securityGroup: { name: string; description: string; port: number; cidr: string };
  role: { name: string; policyName: string; profileName: string };
  launchTemplate: { name: string; instanceType: string };
}

export interface BucketActual {
  publicAccessBlocked: boolean;
  encrypted: boolean;
  tags: Tags;
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

export interface LaunchTemplateActual {
  id: string;
  instanceType?: string;
  profileName?: string;
  securityGroupIds: string[];
  httpTokens?: string;
  instanceMetadataTags?: string;
  /** Tags the template puts on the instances it launches. */
  instanceTags: Tags;
  tags: Tags;
}

/** What exists now; a missing key means the resource does not exist. */
export interface ActualState {
  buckets: Record<string, BucketActual | undefined>;
  queues: Record<string, QueueActual | undefined>;
  securityGroup?: SecurityGroupActual;
  role?: RoleActual;
  instanceProfile?: InstanceProfileActual;
  launchTemplate?: LaunchTemplateActual;
}

export type ResourceKind = "bucket" | "queue" | "security-group" | "role" | "instance-profile" | "launch-template";

export type Change =
  | { kind: "create"; resource: ResourceKind; name: string }
  | { kind: "tag"; resource: ResourceKind; name: string }
  | { kind: "block-public-access"; name: string }
  | { kind: "encrypt-bucket"; name: string }
  | { kind: "set-queue-attributes"; name: string; attributes: string[] }
  | { kind: "authorize-ingress"; name: string; rule: IngressRule }
  | { kind: "revoke-ingress"; name: string; rule: IngressRule }
  | { kind: "update-trust-policy"; name: string }
  | { kind: "put-role-policy"; name: string; policyName: string }
  | { kind: "add-role-to-instance-profile"; name: string; roleName: string }
  | { kind: "update-launch-template"; name: string; fields: string[] };

export interface DesiredOptions {
  region: string;
  ingressCidr: string;
  appInstanceType: string;
}

export function desiredState(config: Config, options: DesiredOptions): DesiredState {
  const names = resourceNames(config);
  const prefix = config.prefix;
  const longPoll = { ReceiveMessageWaitTimeSeconds: String(LONG_POLL_SECONDS) };
  return {
    prefix,
    region: options.region,
    tags: { [DEPLOYMENT_TAG]: prefix },
    names,
    buckets: [...new Set([names.inBucket, names.outBucket, names.galleryBucket])],
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
    role: { name: `${prefix}-instance-role`, policyName: `${prefix}-instance-policy`, profileName: `${prefix}-instance-profile` },
    launchTemplate: { name: names.launchTemplate, instanceType: options.appInstanceType },
  };
}

export function desiredPermissions(desired: DesiredState, roleArn: string): PolicyDocument {
  const { partition, accountId } = parseRoleArn(roleArn);
  return instanceRolePermissions({
    prefix: desired.prefix,
    partition,
    accountId,
    region: desired.region,
    roleName: desired.role.name,
    names: desired.names,
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

const hasTags = (actual: Tags, wanted: Tags) => Object.entries(wanted).every(([key, value]) => actual[key] === value);
const sameRule = (a: IngressRule, b: IngressRule) => a.protocol === b.protocol && a.fromPort === b.fromPort && a.toPort === b.toPort && a.cidr === b.cidr;

export function planChanges(desired: DesiredState, actual: ActualState): Change[] {
  const changes: Change[] = [];
  const { tags } = desired;

  for (const name of desired.buckets) {
    const bucket = actual.buckets[name];
    if (!bucket) changes.push({ kind: "create", resource: "bucket", name });
    if (!bucket?.publicAccessBlocked) changes.push({ kind: "block-public-access", name });
    if (!bucket?.encrypted) changes.push({ kind: "encrypt-bucket", name });
    if (!bucket || !hasTags(bucket.tags, tags)) changes.push({ kind: "tag", resource: "bucket", name });
  }

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

  const role = desired.role;
  const putPolicy: Change = { kind: "put-role-policy", name: role.name, policyName: role.policyName };
  if (!actual.role) {
    changes.push({ kind: "create", resource: "role", name: role.name }, putPolicy);
  } else {
    if (!Bun.deepEquals(actual.role.trustPolicy, instanceRoleTrustPolicy())) changes.push({ kind: "update-trust-policy", name: role.name });
    if (!Bun.deepEquals(actual.role.permissions, desiredPermissions(desired, actual.role.arn))) changes.push(putPolicy);
    if (!hasTags(actual.role.tags, tags)) changes.push({ kind: "tag", resource: "role", name: role.name });
  }
  const addRole: Change = { kind: "add-role-to-instance-profile", name: role.profileName, roleName: role.name };
  if (!actual.instanceProfile) {
    changes.push({ kind: "create", resource: "instance-profile", name: role.profileName }, addRole);
  } else {
    if (!actual.instanceProfile.roleNames.includes(role.name)) changes.push(addRole);
    if (!hasTags(actual.instanceProfile.tags, tags)) changes.push({ kind: "tag", resource: "instance-profile", name: role.profileName });
  }

  const template = desired.launchTemplate;
  const current = actual.launchTemplate;
  if (!current) {
    changes.push({ kind: "create", resource: "launch-template", name: template.name });
  } else {
    const fields: string[] = [];
    if (current.instanceType !== template.instanceType) fields.push("InstanceType");
    if (current.profileName !== role.profileName) fields.push("IamInstanceProfile");
    const groupId = actual.securityGroup?.id;
    if (!groupId || current.securityGroupIds.length !== 1 || current.securityGroupIds[0] !== groupId) fields.push("SecurityGroupIds");
    if (current.httpTokens !== "required" || current.instanceMetadataTags !== "enabled") fields.push("MetadataOptions");
    if (!hasTags(current.instanceTags, tags)) fields.push("TagSpecifications");
    if (fields.length > 0) changes.push({ kind: "update-launch-template", name: template.name, fields });
    if (!hasTags(current.tags, tags)) changes.push({ kind: "tag", resource: "launch-template", name: template.name });
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
    case "set-queue-attributes":
      return `set ${change.attributes.join(", ")} of queue ${change.name}`;
    case "authorize-ingress":
      return `allow ${change.rule.protocol} ${change.rule.fromPort} from ${change.rule.cidr} into security group ${change.name}`;
    case "revoke-ingress":
      return `revoke ${change.rule.protocol} ${change.rule.fromPort}-${change.rule.toPort} from ${change.rule.cidr} in security group ${change.name}`;
    case "update-trust-policy":
      return `reset the trust policy of role ${change.name} to EC2 only`;
    case "put-role-policy":
      return `put least-privilege policy ${change.policyName} on role ${change.name}`;
    case "add-role-to-instance-profile":
      return `add role ${change.roleName} to instance profile ${change.name}`;
    case "update-launch-template":
      return `new default version of launch template ${change.name} (${change.fields.join(", ")})`;
  }
}
