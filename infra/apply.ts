/** Carries out a plan, one printed step per change, in the plan's order: one handler per kind of change. */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateLaunchTemplateCommand,
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  RevokeSecurityGroupIngressCommand,
} from "@aws-sdk/client-ec2";
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  PutRolePolicyCommand,
  TagInstanceProfileCommand,
  TagRoleCommand,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import {
  CreateBucketCommand,
  PutBucketEncryptionCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketTaggingCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
  type BucketLocationConstraint,
} from "@aws-sdk/client-s3";
import { CreateQueueCommand, GetQueueAttributesCommand, SetQueueAttributesCommand, TagQueueCommand } from "@aws-sdk/client-sqs";
import { groupNotYetKnown, isAwsError, NO_SUCH_QUEUE, onceConsistent, profileNotYetUsable, toTagList, unlessMissing, type AwsClients } from "./aws.ts";
import { describeChange, desiredPermissions, redrivePolicy, type ActualState, type Change, type DesiredState, type IngressRule, type QueueSpec, type ResourceKind } from "./plan.ts";
import { launchTemplateData, newDefaultVersion } from "./launch-template.ts";
import { INSTANCE_ROLES, instanceRoleTrustPolicy } from "./policies.ts";
import { waitUntil, type Output } from "./script.ts";

/** SQS frees a deleted queue's name after 60 s. */
const QUEUE_NAME_REUSE_TIMEOUT_SECONDS = 90;

export interface ApplyOptions {
  pollSeconds: number;
  /** FACEFLEET_API_TOKEN, when set: the token to store. */
  apiToken?: string;
}

/** The ids of the deployment's resources, found or created: what the state file records. */
export interface KnownResources {
  /** By queue name. */
  queueUrls: Map<string, string>;
  securityGroupId?: string;
  /** By role name. */
  roleArns: Map<string, string>;
  /** By instance profile name. */
  instanceProfileArns: Map<string, string>;
  launchTemplateId?: string;
}

export interface Applied {
  /** The admin token bootstrap made up because none was stored and FACEFLEET_API_TOKEN was not set: print it once. */
  createdApiToken?: string;
}

/** What the handlers share: the plan's inputs, and the ids of resources found or created so far. */
interface Apply {
  known: KnownResources;
  aws: AwsClients;
  desired: DesiredState;
  actual: ActualState;
  options: ApplyOptions;
  createdApiToken?: string;
}

/** 32 random bytes, URL-safe: nothing to quote in a shell or a header. */
const newApiToken = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");

type ChangeOf<Kind extends Change["kind"]> = Extract<Change, { kind: Kind }>;
type ChangeHandlers = { [Kind in Change["kind"]]: (run: Apply, change: ChangeOf<Kind>) => Promise<void> };
type ResourceHandlers = Record<ResourceKind, (run: Apply, name: string) => Promise<void>>;

function known<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is unknown: it was neither found nor created`);
  return value;
}

const queueUrl = (run: Apply, name: string) => known(run.known.queueUrls.get(name), `queue ${name}`);
const securityGroupId = (run: Apply) => known(run.known.securityGroupId, "security group id");
const queueSpec = (run: Apply, name: string) => run.desired.queues.find((queue) => queue.name === name)!;

/** A queue SQS created a moment ago: "wait at least one second after creating a queue before using it" (CreateQueue). */
const queueNotYetKnown = (error: unknown) => isAwsError(error, ...NO_SUCH_QUEUE);

async function queueAttributes(run: Apply, spec: QueueSpec): Promise<Record<string, string>> {
  if (!spec.redrive) return spec.attributes;
  const command = new GetQueueAttributesCommand({ QueueUrl: queueUrl(run, spec.redrive.deadLetterQueue), AttributeNames: ["QueueArn"] });
  const { Attributes } = await onceConsistent(() => run.aws.sqs.send(command), queueNotYetKnown, run.options.pollSeconds);
  const dlqArn = known(Attributes?.QueueArn, `ARN of ${spec.redrive.deadLetterQueue}`);
  return { ...spec.attributes, RedrivePolicy: redrivePolicy(dlqArn, spec.redrive.maxReceiveCount) };
}

const ipPermission = (rule: IngressRule, description?: string) => ({
  IpProtocol: rule.protocol,
  FromPort: rule.fromPort,
  ToPort: rule.toPort,
  IpRanges: [{ CidrIp: rule.cidr, ...(description && { Description: description }) }],
});

const create: ResourceHandlers = {
  bucket: async ({ aws, desired }, name) => {
    const location = desired.region === "us-east-1" ? undefined : { LocationConstraint: desired.region as BucketLocationConstraint };
    await aws.s3.send(new CreateBucketCommand({ Bucket: name, ObjectOwnership: "BucketOwnerEnforced", CreateBucketConfiguration: location }));
  },
  queue: async (run, name) => {
    const command = new CreateQueueCommand({ QueueName: name, Attributes: await queueAttributes(run, queueSpec(run, name)), tags: run.desired.tags });
    // SQS refuses a queue's name for 60 s after that queue was deleted (a teardown just before, say).
    const url = await waitUntil(
      `SQS to take the name ${name} again after its deletion`,
      async () => (await unlessMissing(() => run.aws.sqs.send(command), "QueueDeletedRecently"))?.QueueUrl,
      { timeoutSeconds: QUEUE_NAME_REUSE_TIMEOUT_SECONDS, pollSeconds: run.options.pollSeconds },
    );
    run.known.queueUrls.set(name, url);
  },
  "security-group": async (run, name) => {
    const { GroupId } = await run.aws.ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: name,
        VpcId: run.desired.network?.vpcId,
        Description: run.desired.securityGroup.description,
        TagSpecifications: [{ ResourceType: "security-group", Tags: toTagList(run.desired.tags) }],
      }),
    );
    run.known.securityGroupId = GroupId;
  },
  role: async (run, name) => {
    const role = INSTANCE_ROLES.find((candidate) => run.desired.roles[candidate].name === name);
    const { Role } = await run.aws.iam.send(
      new CreateRoleCommand({
        RoleName: name,
        AssumeRolePolicyDocument: JSON.stringify(instanceRoleTrustPolicy()),
        Description: `facefleet ${run.desired.prefix}: the ${role} instances`,
        Tags: toTagList(run.desired.tags),
      }),
    );
    if (Role?.Arn) run.known.roleArns.set(name, Role.Arn);
  },
  "instance-profile": async (run, name) => {
    const { InstanceProfile } = await run.aws.iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: name, Tags: toTagList(run.desired.tags) }));
    if (InstanceProfile?.Arn) run.known.instanceProfileArns.set(name, InstanceProfile.Arn);
  },
  "launch-template": async (run, name) => {
    const command = new CreateLaunchTemplateCommand({
      LaunchTemplateName: name,
      LaunchTemplateData: launchTemplateData(run.desired, securityGroupId(run)),
      TagSpecifications: [{ ResourceType: "launch-template", Tags: toTagList(run.desired.tags) }],
    });
    // The template names an instance profile created a moment ago, which EC2 may refuse for some seconds.
    const { LaunchTemplate } = await onceConsistent(() => run.aws.ec2.send(command), profileNotYetUsable, run.options.pollSeconds);
    run.known.launchTemplateId = LaunchTemplate?.LaunchTemplateId;
  },
};

const tag: ResourceHandlers = {
  bucket: async ({ aws, desired, actual }, name) => {
    // PutBucketTagging replaces the whole set: keep what others put there.
    await aws.s3.send(new PutBucketTaggingCommand({ Bucket: name, Tagging: { TagSet: toTagList({ ...actual.buckets[name]?.tags, ...desired.tags }) } }));
  },
  queue: async (run, name) => {
    await run.aws.sqs.send(new TagQueueCommand({ QueueUrl: queueUrl(run, name), Tags: run.desired.tags }));
  },
  "security-group": async (run) => {
    const command = new CreateTagsCommand({ Resources: [securityGroupId(run)], Tags: toTagList(run.desired.tags) });
    await onceConsistent(() => run.aws.ec2.send(command), groupNotYetKnown, run.options.pollSeconds);
  },
  "launch-template": async (run) => {
    await run.aws.ec2.send(new CreateTagsCommand({ Resources: [known(run.known.launchTemplateId, "launch template id")], Tags: toTagList(run.desired.tags) }));
  },
  role: async ({ aws, desired }, name) => {
    await aws.iam.send(new TagRoleCommand({ RoleName: name, Tags: toTagList(desired.tags) }));
  },
  "instance-profile": async ({ aws, desired }, name) => {
    await aws.iam.send(new TagInstanceProfileCommand({ InstanceProfileName: name, Tags: toTagList(desired.tags) }));
  },
};

const handlers: ChangeHandlers = {
  create: (run, change) => create[change.resource](run, change.name),
  tag: (run, change) => tag[change.resource](run, change.name),
  "block-public-access": async ({ aws }, change) => {
    await aws.s3.send(
      new PutPublicAccessBlockCommand({
        Bucket: change.name,
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true },
      }),
    );
  },
  "encrypt-bucket": async ({ aws }, change) => {
    await aws.s3.send(
      new PutBucketEncryptionCommand({
        Bucket: change.name,
        ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }] },
      }),
    );
  },
  "set-lifecycle": async ({ aws }, change) => {
    // The whole configuration is replaced: the deployment's buckets carry no other rule.
    const abort = { ID: "facefleet-abort-incomplete-uploads", Status: "Enabled" as const, Filter: { Prefix: "" }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: change.abortIncompleteUploadsAfterDays } };
    const expiries = change.expiries.map((expiry) => ({
      ID: expiry.what === "uploads" ? `facefleet-expire-uploads-${expiry.prefix}` : `facefleet-expire-${expiry.what}`,
      Status: "Enabled" as const,
      Filter: { Prefix: expiry.prefix },
      Expiration: { Days: expiry.days },
    }));
    await aws.s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket: change.name, LifecycleConfiguration: { Rules: [...expiries, abort] } }));
  },
  "set-queue-attributes": async (run, change) => {
    const Attributes = await queueAttributes(run, queueSpec(run, change.name));
    await run.aws.sqs.send(new SetQueueAttributesCommand({ QueueUrl: queueUrl(run, change.name), Attributes }));
  },
  "authorize-ingress": async (run, change) => {
    const command = new AuthorizeSecurityGroupIngressCommand({ GroupId: securityGroupId(run), IpPermissions: [ipPermission(change.rule, "facefleet web tier")] });
    // Right after CreateSecurityGroup, EC2 may not know the group yet.
    await onceConsistent(() => run.aws.ec2.send(command), groupNotYetKnown, run.options.pollSeconds);
  },
  "revoke-ingress": async (run, change) => {
    await run.aws.ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: securityGroupId(run), IpPermissions: [ipPermission(change.rule)] }));
  },
  "update-trust-policy": async ({ aws }, change) => {
    await aws.iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: change.name, PolicyDocument: JSON.stringify(instanceRoleTrustPolicy()) }));
  },
  "put-role-policy": async (run, change) => {
    const document = desiredPermissions(run.desired, change.role, known(run.known.roleArns.get(change.name), `ARN of role ${change.name}`), run.known.launchTemplateId);
    await run.aws.iam.send(new PutRolePolicyCommand({ RoleName: change.name, PolicyName: change.policyName, PolicyDocument: JSON.stringify(document) }));
  },
  "add-role-to-instance-profile": async ({ aws }, change) => {
    await aws.iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: change.name, RoleName: change.roleName }));
  },
  "update-launch-template": async (run) => {
    // Based on the default version, so the image id bake-ami put there stays.
    await newDefaultVersion(run.aws.ec2, known(run.known.launchTemplateId, "launch template id"), launchTemplateData(run.desired, securityGroupId(run)));
  },
  "put-api-token": async (run, change) => {
    const token = run.options.apiToken ?? newApiToken();
    await run.aws.s3.send(
      new PutObjectCommand({ Bucket: change.name, Key: change.key, Body: token, ContentType: "text/plain", ServerSideEncryption: "AES256" }),
    );
    if (run.options.apiToken === undefined) run.createdApiToken = token;
  },
};

/** TypeScript cannot correlate a change's kind with its handler's parameter across the union; the record's type does. */
const handle = (run: Apply, change: Change) => (handlers[change.kind] as (run: Apply, change: Change) => Promise<void>)(run, change);

const presentUrls = <T extends { url?: string; arn?: string }>(entries: Record<string, T | undefined>, field: "url" | "arn") =>
  new Map(Object.entries(entries).flatMap(([name, entry]) => (entry?.[field] ? [[name, entry[field]] as const] : [])));

export const knownResources = (actual: ActualState): KnownResources => ({
  queueUrls: presentUrls(actual.queues, "url"),
  securityGroupId: actual.securityGroup?.id,
  roleArns: presentUrls(actual.roles, "arn"),
  instanceProfileArns: presentUrls(actual.instanceProfiles, "arn"),
  launchTemplateId: actual.launchTemplate?.id,
});

/** `known` starts as what was found (`knownResources(actual)`) and gains each resource as it is created, failure or not. */
export async function applyChanges(aws: AwsClients, desired: DesiredState, actual: ActualState, changes: Change[], out: Output, options: ApplyOptions, known: KnownResources): Promise<Applied> {
  const run: Apply = { known, aws, desired, actual, options };
  for (const change of changes) await out.step(describeChange(change), () => handle(run, change));
  return { createdApiToken: run.createdApiToken };
}
