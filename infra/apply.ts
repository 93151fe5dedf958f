/** Carries out a plan, one printed step per change, in the plan's order. */
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
import { CreateBucketCommand, PutBucketEncryptionCommand, PutBucketTaggingCommand, PutPublicAccessBlockCommand, type BucketLocationConstraint } from "@aws-sdk/client-s3";
import { CreateQueueCommand, GetQueueAttributesCommand, SetQueueAttributesCommand, TagQueueCommand } from "@aws-sdk/client-sqs";
import { toTagList, unlessMissing, type AwsClients } from "./aws.ts";
import { describeChange, desiredPermissions, redrivePolicy, type ActualState, type Change, type DesiredState, type IngressRule, type QueueSpec } from "./plan.ts";
import { launchTemplateData, newDefaultVersion } from "./launch-template.ts";
import { instanceRoleTrustPolicy } from "./policies.ts";
import { waitUntil, type Output } from "./script.ts";

const ipPermission = (rule: IngressRule, description?: string) => ({
  IpProtocol: rule.protocol,
  FromPort: rule.fromPort,
  ToPort: rule.toPort,
  IpRanges: [{ CidrIp: rule.cidr, ...(description && { Description: description }) }],
});

/** SQS frees a deleted queue's name after 60 s. */
const QUEUE_NAME_REUSE_TIMEOUT_SECONDS = 90;

export async function applyChanges(aws: AwsClients, desired: DesiredState, actual: ActualState, changes: Change[], out: Output, pollSeconds: number): Promise<void> {
  const queueUrls = new Map(Object.entries(actual.queues).flatMap(([name, queue]) => (queue ? [[name, queue.url] as const] : [])));
  let securityGroupId = actual.securityGroup?.id;
  let roleArn = actual.role?.arn;
  let launchTemplateId = actual.launchTemplate?.id;
  const tags = desired.tags;
  const queueSpec = (name: string) => desired.queues.find((queue) => queue.name === name)!;
  const known = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is unknown: it was neither found nor created`);
    return value;
  };

  const queueAttributes = async (spec: QueueSpec): Promise<Record<string, string>> => {
    if (!spec.redrive) return spec.attributes;
    const dlqUrl = known(queueUrls.get(spec.redrive.deadLetterQueue), `queue ${spec.redrive.deadLetterQueue}`);
    const { Attributes } = await aws.sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ["QueueArn"] }));
    const dlqArn = known(Attributes?.QueueArn, `ARN of ${spec.redrive.deadLetterQueue}`);
    return { ...spec.attributes, RedrivePolicy: redrivePolicy(dlqArn, spec.redrive.maxReceiveCount) };
  };

  const apply = async (change: Change): Promise<void> => {
    switch (change.kind) {
      case "create":
        switch (change.resource) {
          case "bucket": {
            const location = desired.region === "us-east-1" ? undefined : { LocationConstraint: desired.region as BucketLocationConstraint };
            await aws.s3.send(new CreateBucketCommand({ Bucket: change.name, ObjectOwnership: "BucketOwnerEnforced", CreateBucketConfiguration: location }));
            return;
          }
          case "queue": {
            const attributes = await queueAttributes(queueSpec(change.name));
            const create = new CreateQueueCommand({ QueueName: change.name, Attributes: attributes, tags });
            // SQS refuses a queue's name for 60 s after that queue was deleted (a teardown just before, say).
            const QueueUrl = await waitUntil(
              `SQS to take the name ${change.name} again after its deletion`,
              async () => (await unlessMissing(() => aws.sqs.send(create), "QueueDeletedRecently"))?.QueueUrl,
              { timeoutSeconds: QUEUE_NAME_REUSE_TIMEOUT_SECONDS, pollSeconds },
            );
            queueUrls.set(change.name, QueueUrl);
            return;
          }
          case "security-group": {
            const { GroupId } = await aws.ec2.send(
              new CreateSecurityGroupCommand({
                GroupName: change.name,
                Description: desired.securityGroup.description,
                TagSpecifications: [{ ResourceType: "security-group", Tags: toTagList(tags) }],
              }),
            );
            securityGroupId = GroupId;
            return;
          }
          case "role": {
            const { Role } = await aws.iam.send(
              new CreateRoleCommand({
                RoleName: change.name,
                AssumeRolePolicyDocument: JSON.stringify(instanceRoleTrustPolicy()),
                Description: `facefleet ${desired.prefix} instances`,
                Tags: toTagList(tags),
              }),
            );
            roleArn = Role?.Arn;
            return;
          }
          case "instance-profile":
            await aws.iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: change.name, Tags: toTagList(tags) }));
            return;
          case "launch-template": {
            const { LaunchTemplate } = await aws.ec2.send(
              new CreateLaunchTemplateCommand({
                LaunchTemplateName: change.name,
                LaunchTemplateData: launchTemplateData(desired, known(securityGroupId, "security group id")),
                TagSpecifications: [{ ResourceType: "launch-template", Tags: toTagList(tags) }],
              }),
            );
            launchTemplateId = LaunchTemplate?.LaunchTemplateId;
            return;
          }
        }
        return;
      case "tag":
        switch (change.resource) {
          case "bucket":
            // PutBucketTagging replaces the whole set: keep what others put there.
            await aws.s3.send(new PutBucketTaggingCommand({ Bucket: change.name, Tagging: { TagSet: toTagList({ ...actual.buckets[change.name]?.tags, ...tags }) } }));
            return;
          case "queue":
            await aws.sqs.send(new TagQueueCommand({ QueueUrl: known(queueUrls.get(change.name), `queue ${change.name}`), Tags: tags }));
            return;
          case "security-group":
            await aws.ec2.send(new CreateTagsCommand({ Resources: [known(securityGroupId, "security group id")], Tags: toTagList(tags) }));
            return;
          case "launch-template":
            await aws.ec2.send(new CreateTagsCommand({ Resources: [known(launchTemplateId, "launch template id")], Tags: toTagList(tags) }));
            return;
          case "role":
            await aws.iam.send(new TagRoleCommand({ RoleName: change.name, Tags: toTagList(tags) }));
            return;
          case "instance-profile":
            await aws.iam.send(new TagInstanceProfileCommand({ InstanceProfileName: change.name, Tags: toTagList(tags) }));
            return;
        }
        return;
      case "block-public-access":
        await aws.s3.send(
          new PutPublicAccessBlockCommand({
            Bucket: change.name,
            PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true },
          }),
        );
        return;
      case "encrypt-bucket":
        await aws.s3.send(
          new PutBucketEncryptionCommand({
            Bucket: change.name,
            ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }] },
          }),
        );
        return;
      case "set-queue-attributes":
        await aws.sqs.send(
          new SetQueueAttributesCommand({ QueueUrl: known(queueUrls.get(change.name), `queue ${change.name}`), Attributes: await queueAttributes(queueSpec(change.name)) }),
        );
        return;
      case "authorize-ingress":
        await aws.ec2.send(
          new AuthorizeSecurityGroupIngressCommand({
            GroupId: known(securityGroupId, "security group id"),
            IpPermissions: [ipPermission(change.rule, "facefleet web tier")],
          }),
        );
        return;
      case "revoke-ingress":
        await aws.ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: known(securityGroupId, "security group id"), IpPermissions: [ipPermission(change.rule)] }));
        return;
      case "update-trust-policy":
        await aws.iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: change.name, PolicyDocument: JSON.stringify(instanceRoleTrustPolicy()) }));
        return;
      case "put-role-policy":
        await aws.iam.send(
          new PutRolePolicyCommand({
            RoleName: change.name,
            PolicyName: change.policyName,
            PolicyDocument: JSON.stringify(desiredPermissions(desired, known(roleArn, `ARN of role ${change.name}`))),
          }),
        );
        return;
      case "add-role-to-instance-profile":
        await aws.iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: change.name, RoleName: change.roleName }));
        return;
      case "update-launch-template":
        // Based on the default version, so the image id bake-ami put there stays.
        await newDefaultVersion(aws.ec2, known(launchTemplateId, "launch template id"), launchTemplateData(desired, known(securityGroupId, "security group id")));
        return;
    }
  };

  for (const change of changes) await out.step(describeChange(change), () => apply(change));
}
