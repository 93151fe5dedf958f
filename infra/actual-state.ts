/** Reads what exists of a deployment, read-only, into the shape the plan compares against. */
import { DescribeLaunchTemplatesCommand, DescribeLaunchTemplateVersionsCommand, DescribeSecurityGroupsCommand } from "@aws-sdk/client-ec2";
import { GetInstanceProfileCommand, GetRoleCommand, GetRolePolicyCommand } from "@aws-sdk/client-iam";
import { GetBucketEncryptionCommand, GetBucketLifecycleConfigurationCommand, GetBucketTaggingCommand, GetObjectCommand, GetPublicAccessBlockCommand, HeadBucketCommand } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, GetQueueUrlCommand, ListQueueTagsCommand } from "@aws-sdk/client-sqs";
import { fromTagList, isAwsError, NO_SUCH_QUEUE, unlessMissing, type AwsClients } from "./aws.ts";
import { sha256Hex, type ActualState, type BucketActual, type DesiredState, type IngressRule, type LaunchTemplateActual, type QueueActual, type RoleActual, type SecurityGroupActual } from "./plan.ts";

const NO_SUCH_IAM_ENTITY = ["NoSuchEntity", "NoSuchEntityException"];

export async function readActualState(aws: AwsClients, desired: DesiredState): Promise<ActualState> {
  const roles = Object.values(desired.roles);
  const [buckets, queues, securityGroup, roleStates, profileStates, launchTemplate, apiToken] = await Promise.all([
    Promise.all(desired.buckets.map(async (name) => [name, await readBucket(aws, name)] as const)),
    Promise.all(desired.queues.map(async (queue) => [queue.name, await readQueue(aws, queue.name)] as const)),
    readSecurityGroup(aws, desired.securityGroup.name, desired.network?.vpcId),
    Promise.all(roles.map(async (role) => [role.name, await readRole(aws, role.name, role.policyName)] as const)),
    Promise.all(roles.map(async (role) => [role.profileName, await readInstanceProfile(aws, role.profileName)] as const)),
    readLaunchTemplate(aws, desired.launchTemplate.name),
    readApiToken(aws, desired.apiToken.bucket, desired.apiToken.key),
  ]);
  return {
    buckets: Object.fromEntries(buckets),
    queues: Object.fromEntries(queues),
    ...(securityGroup && { securityGroup }),
    roles: Object.fromEntries(roleStates),
    instanceProfiles: Object.fromEntries(profileStates),
    ...(launchTemplate && { launchTemplate }),
    ...(apiToken && { apiToken }),
  };
}

/** Only the token's digest leaves this function, so the secret never reaches the plan or its printout. */
async function readApiToken(aws: AwsClients, Bucket: string, Key: string): Promise<{ sha256: string } | undefined> {
  const found = await unlessMissing(() => aws.s3.send(new GetObjectCommand({ Bucket, Key })), "NoSuchKey", "NoSuchBucket");
  if (!found?.Body) return undefined;
  return { sha256: sha256Hex((await found.Body.transformToString()).trim()) };
}

async function readBucket(aws: AwsClients, Bucket: string): Promise<BucketActual | undefined> {
  try {
    await aws.s3.send(new HeadBucketCommand({ Bucket }));
  } catch (error) {
    if (isAwsError(error, "NotFound", "NoSuchBucket")) return undefined;
    // HeadBucket answers carry no body, so the SDK cannot name the error: go by the HTTP status.
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 403) throw new Error(`bucket name ${Bucket} is taken by another AWS account: set another prefix`);
    if (status === 301) throw new Error(`bucket ${Bucket} is in another region than ${aws.region}: set AWS_REGION to it, or another prefix`);
    throw error;
  }
  const [block, encryption, tagging, lifecycle] = await Promise.all([
    unlessMissing(() => aws.s3.send(new GetPublicAccessBlockCommand({ Bucket })), "NoSuchPublicAccessBlockConfiguration"),
    unlessMissing(() => aws.s3.send(new GetBucketEncryptionCommand({ Bucket })), "ServerSideEncryptionConfigurationNotFoundError"),
    unlessMissing(() => aws.s3.send(new GetBucketTaggingCommand({ Bucket })), "NoSuchTagSet"),
    unlessMissing(() => aws.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket })), "NoSuchLifecycleConfiguration"),
  ]);
  const settings = block?.PublicAccessBlockConfiguration;
  const enabled = (lifecycle?.Rules ?? []).filter((rule) => rule.Status === "Enabled");
  const wholeBucket = (rule: (typeof enabled)[number]) => (rule.Filter?.Prefix ?? rule.Prefix ?? "") === "" && !rule.Filter?.Tag && !rule.Filter?.And;
  return {
    publicAccessBlocked: Boolean(settings?.BlockPublicAcls && settings.IgnorePublicAcls && settings.BlockPublicPolicy && settings.RestrictPublicBuckets),
    encrypted: (encryption?.ServerSideEncryptionConfiguration?.Rules ?? []).some((rule) => rule.ApplyServerSideEncryptionByDefault?.SSEAlgorithm),
    tags: fromTagList(tagging?.TagSet),
    expirations: enabled.flatMap((rule) => (rule.Expiration?.Days !== undefined ? [{ prefix: rule.Filter?.Prefix ?? rule.Prefix ?? "", days: rule.Expiration.Days }] : [])),
    abortIncompleteUploadsAfterDays: enabled.find((rule) => wholeBucket(rule) && rule.AbortIncompleteMultipartUpload)?.AbortIncompleteMultipartUpload?.DaysAfterInitiation,
  };
}

async function readQueue(aws: AwsClients, QueueName: string): Promise<QueueActual | undefined> {
  const found = await unlessMissing(() => aws.sqs.send(new GetQueueUrlCommand({ QueueName })), ...NO_SUCH_QUEUE);
  if (!found?.QueueUrl) return undefined;
  const QueueUrl = found.QueueUrl;
  const [attributes, tags] = await Promise.all([
    aws.sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["All"] })),
    aws.sqs.send(new ListQueueTagsCommand({ QueueUrl })),
  ]);
  return { url: QueueUrl, attributes: { ...attributes.Attributes }, tags: { ...tags.Tags } };
}

/** Group names are unique per VPC only: the lookup names the VPC, or another VPC's group of that name would be adopted. */
async function readSecurityGroup(aws: AwsClients, name: string, vpcId: string | undefined): Promise<SecurityGroupActual | undefined> {
  const filters = [{ Name: "group-name", Values: [name] }, ...(vpcId ? [{ Name: "vpc-id", Values: [vpcId] }] : [])];
  const { SecurityGroups } = await aws.ec2.send(new DescribeSecurityGroupsCommand({ Filters: filters }));
  const group = SecurityGroups?.[0];
  if (!group?.GroupId) return undefined;
  const ingress: IngressRule[] = (group.IpPermissions ?? []).flatMap((permission) =>
    (permission.IpRanges ?? []).map((range) => ({
      protocol: permission.IpProtocol ?? "",
      fromPort: permission.FromPort ?? -1,
      toPort: permission.ToPort ?? -1,
      cidr: range.CidrIp ?? "",
    })),
  );
  return { id: group.GroupId, ingress, tags: fromTagList(group.Tags) };
}

/** IAM returns policy documents URL-encoded. */
const parsePolicy = (document: string | undefined): unknown => (document ? JSON.parse(decodeURIComponent(document)) : undefined);

async function readRole(aws: AwsClients, RoleName: string, PolicyName: string): Promise<RoleActual | undefined> {
  const found = await unlessMissing(() => aws.iam.send(new GetRoleCommand({ RoleName })), ...NO_SUCH_IAM_ENTITY);
  if (!found?.Role?.Arn) return undefined;
  const policy = await unlessMissing(() => aws.iam.send(new GetRolePolicyCommand({ RoleName, PolicyName })), ...NO_SUCH_IAM_ENTITY);
  return {
    arn: found.Role.Arn,
    trustPolicy: parsePolicy(found.Role.AssumeRolePolicyDocument),
    permissions: parsePolicy(policy?.PolicyDocument),
    tags: fromTagList(found.Role.Tags),
  };
}

async function readInstanceProfile(aws: AwsClients, InstanceProfileName: string) {
  const found = await unlessMissing(() => aws.iam.send(new GetInstanceProfileCommand({ InstanceProfileName })), ...NO_SUCH_IAM_ENTITY);
  const profile = found?.InstanceProfile;
  if (!profile?.Arn) return undefined;
  return { arn: profile.Arn, roleNames: (profile.Roles ?? []).map((role) => role.RoleName ?? ""), tags: fromTagList(profile.Tags) };
}

async function readLaunchTemplate(aws: AwsClients, name: string): Promise<LaunchTemplateActual | undefined> {
  const found = await unlessMissing(
    () => aws.ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateNames: [name] })),
    "InvalidLaunchTemplateName.NotFoundException",
  );
  const template = found?.LaunchTemplates?.[0];
  if (!template?.LaunchTemplateId) return undefined;
  const { LaunchTemplateVersions } = await aws.ec2.send(
    new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: template.LaunchTemplateId, Versions: ["$Default"] }),
  );
  const data = LaunchTemplateVersions?.[0]?.LaunchTemplateData ?? {};
  return {
    id: template.LaunchTemplateId,
    instanceType: data.InstanceType,
    profileName: data.IamInstanceProfile?.Name,
    securityGroupIds: data.NetworkInterfaces?.[0]?.Groups ?? data.SecurityGroupIds ?? [],
    subnetId: data.NetworkInterfaces?.[0]?.SubnetId,
    httpTokens: data.MetadataOptions?.HttpTokens,
    instanceMetadataTags: data.MetadataOptions?.InstanceMetadataTags,
    volumes: (data.BlockDeviceMappings ?? []).map(({ DeviceName, Ebs }) => ({
      deviceName: DeviceName,
      sizeGiB: Ebs?.VolumeSize,
      type: Ebs?.VolumeType,
      iops: Ebs?.Iops,
      throughputMiBps: Ebs?.Throughput,
      deleteOnTermination: Ebs?.DeleteOnTermination,
    })),
    instanceTags: fromTagList(data.TagSpecifications?.find((spec) => spec.ResourceType === "instance")?.Tags),
    tags: fromTagList(template.Tags),
  };
}
