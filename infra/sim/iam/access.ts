/**
 * Instance roles enforced on the emulated region's calls: each instance process signs with its own access key, the
 * key leads to the instance, its instance profile, the profile's role and that role's inline policies, and each
 * request is turned into the IAM authorizations AWS would check for it (action, resource ARN, context keys). A key
 * that belongs to no instance is the operator's (the infra scripts, the tests): it may do everything.
 */
import type { PolicyDocument } from "../../policies.ts";
import { resolveLaunch } from "../ec2/actions/instances.ts";
import { ACCOUNT_ID, type BlockDeviceMapping, type Ec2Store } from "../ec2/model.ts";
import { QueryError, tagParams, texts, type Params } from "../query-protocol.ts";
import { evaluate, type AccessRequest, type RequestContext } from "./evaluate.ts";

/** The access key id an instance's process signs with (its metadata service hands out the same). */
export const instanceAccessKey = (instanceId: string) => `AKIA${instanceId.slice(2).toUpperCase()}`;

const SIGNATURE_CREDENTIAL = /Credential=([^/,\s]+)\//;
export const accessKeyOf = (request: Request) => SIGNATURE_CREDENTIAL.exec(request.headers.get("authorization") ?? "")?.[1];

export interface AccessControl {
  /** The first of `requests` the caller may not make, if any. */
  denied(accessKeyId: string | undefined, requests: AccessRequest[]): AccessRequest | undefined;
}

/**
 * `policiesOf` answers undefined for the operator, the role's policies (none without a role) for an instance;
 * `callerContext` the keys AWS sets on every request of that caller (`ec2:SourceInstanceARN` for an instance's role).
 */
export function accessControl(policiesOf: (accessKeyId: string) => PolicyDocument[] | undefined, callerContext: (accessKeyId: string) => RequestContext = () => ({})): AccessControl {
  return {
    denied(accessKeyId, requests) {
      const policies = accessKeyId === undefined ? undefined : policiesOf(accessKeyId);
      if (policies === undefined || accessKeyId === undefined) return undefined;
      const caller = callerContext(accessKeyId);
      return requests.find((request) => evaluate(policies, { ...request, context: { ...caller, ...request.context } }) !== "allowed");
    },
  };
}

/** Path-style S3: `/bucket` and `/bucket/key`, with the subresources the service and the scripts use. */
export function s3Access(method: string, url: URL): AccessRequest {
  const [bucket = "", ...rest] = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const key = rest.join("/");
  const bucketArn = `arn:aws:s3:::${bucket}`;
  if (!key) {
    const bucketAction: Record<string, string> = { GET: "s3:ListBucket", HEAD: "s3:ListBucket", PUT: "s3:CreateBucket", DELETE: "s3:DeleteBucket", POST: "s3:DeleteObject" };
    if (method === "GET" && url.searchParams.has("uploads")) return { action: "s3:ListBucketMultipartUploads", resource: bucketArn };
    return { action: bucket ? (bucketAction[method] ?? "s3:Unknown") : "s3:ListAllMyBuckets", resource: bucket ? bucketArn : "*" };
  }
  // DELETE with an uploadId aborts a multipart upload, an action of its own.
  if (method === "DELETE" && url.searchParams.has("uploadId")) return { action: "s3:AbortMultipartUpload", resource: `${bucketArn}/${key}` };
  const objectAction: Record<string, string> = { GET: "s3:GetObject", HEAD: "s3:GetObject", PUT: "s3:PutObject", POST: "s3:PutObject", DELETE: "s3:DeleteObject" };
  return { action: objectAction[method] ?? "s3:Unknown", resource: `${bucketArn}/${key}` };
}

/** SQS's JSON protocol: the queue named by QueueUrl or QueueName. */
export function sqsAccess(operation: string, body: { QueueUrl?: string; QueueName?: string }, region: string): AccessRequest {
  const name = body.QueueName ?? body.QueueUrl?.split("/").pop();
  return { action: `sqs:${operation}`, resource: name ? `arn:aws:sqs:${region}:${ACCOUNT_ID}:${name}` : "*" };
}

export interface Ec2AccessSource {
  store: Ec2Store;
  region: string;
  /** The ARN of the role in an instance profile, for iam:PassRole. */
  roleArnOfProfile(profileName: string): string | undefined;
}

const tagContext = (prefix: "aws:RequestTag" | "aws:ResourceTag", tags: Record<string, string>): RequestContext => ({
  ...Object.fromEntries(Object.entries(tags).map(([key, value]) => [`${prefix}/${key}`, value])),
  ...(prefix === "aws:RequestTag" && { "aws:TagKeys": Object.keys(tags) }),
});

/** The authorizations of one EC2 Query call: every resource of a RunInstances, each instance of a start or stop. */
export function ec2Access(action: string, params: Params, source: Ec2AccessSource): AccessRequest[] {
  const { store, region } = source;
  const arn = (resource: string) => `arn:aws:ec2:${region}:${ACCOUNT_ID}:${resource}`;
  const ec2Action = `ec2:${action}`;
  const instanceContext = (id: string): RequestContext => {
    const instance = store.instances.get(id);
    return {
      ...tagContext("aws:ResourceTag", store.tagsOf(id)),
      "ec2:InstanceType": instance?.instanceType,
      "ec2:InstanceProfile": instance?.iamInstanceProfile?.arn,
    };
  };
  switch (action) {
    case "StartInstances":
    case "StopInstances":
    case "TerminateInstances":
    case "RebootInstances":
      return texts(params, "InstanceId").map((id) => ({ action: ec2Action, resource: arn(`instance/${id}`), context: instanceContext(id) }));
    case "RunInstances":
      return runInstancesAccess(params, source, arn);
    case "CreateTags":
    case "DeleteTags":
      return texts(params, "ResourceId").map((id) => ({
        action: ec2Action,
        resource: arn(`${id.startsWith("i-") ? "instance" : "resource"}/${id}`),
        context: { ...tagContext("aws:ResourceTag", store.tagsOf(id)), ...tagContext("aws:RequestTag", tagParams(params, "Tag")) },
      }));
    default:
      // Describe* take no resource-level permissions; the rest the service never calls: "*" is what a policy must grant.
      return [{ action: ec2Action, resource: "*" }];
  }
}

/**
 * The keys of a volume RunInstances creates; a setting the mappings leave out sets no key. No ec2:Encrypted: it also
 * depends on the account's encryption by default, and no policy here conditions on it.
 */
function volumeContext({ ebs }: BlockDeviceMapping): RequestContext {
  const number = (value: number | undefined) => (value === undefined ? undefined : String(value));
  return {
    "ec2:VolumeSize": number(ebs?.volumeSize),
    "ec2:VolumeType": ebs?.volumeType,
    "ec2:VolumeIops": number(ebs?.iops),
    "ec2:VolumeThroughput": number(ebs?.throughput),
  };
}

function runInstancesAccess(params: Params, source: Ec2AccessSource, arn: (resource: string) => string): AccessRequest[] {
  const { store } = source;
  const { spec, template, volumes } = resolveLaunch(params, store);
  const context: RequestContext = template ? { "ec2:LaunchTemplate": arn(`launch-template/${template.id}`) } : {};
  const tagsFor = (type: string) => Object.assign({}, ...(spec.tagSpecifications ?? []).filter((tags) => tags.resourceType === type).map((tags) => tags.tags)) as Record<string, string>;
  const profileName = spec.iamInstanceProfile?.name ?? spec.iamInstanceProfile?.arn?.split("/").pop();
  const instanceTags = tagsFor("instance");
  const requests: AccessRequest[] = [
    {
      action: "ec2:RunInstances",
      resource: arn("instance/*"),
      context: {
        ...context,
        ...tagContext("aws:RequestTag", instanceTags),
        "ec2:InstanceType": spec.instanceType ?? "m1.small",
        "ec2:InstanceProfile": profileName && `arn:aws:iam::${ACCOUNT_ID}:instance-profile/${profileName}`,
        // As the instance gets them: the caller's options over the template's, else EC2's defaults.
        "ec2:MetadataHttpTokens": spec.metadataOptions?.httpTokens ?? "optional",
        "ec2:MetadataHttpPutResponseHopLimit": String(spec.metadataOptions?.httpPutResponseHopLimit ?? 1),
        "ec2:Tenancy": spec.tenancy ?? "default",
      },
    },
    // One authorization per volume the instance gets, as EC2 creates it: the AMI's mapping under the caller's.
    ...volumes.map((volume) => ({
      action: "ec2:RunInstances",
      resource: arn("volume/*"),
      context: { ...context, ...tagContext("aws:RequestTag", tagsFor("volume")), ...volumeContext(volume) },
    })),
  ];
  if (spec.imageId) {
    const image = `arn:aws:ec2:${source.region}::image/${spec.imageId}`;
    requests.push({ action: "ec2:RunInstances", resource: image, context: { ...context, ...tagContext("aws:ResourceTag", store.tagsOf(spec.imageId)) } });
  }
  if (context["ec2:LaunchTemplate"]) requests.push({ action: "ec2:RunInstances", resource: context["ec2:LaunchTemplate"] as string, context });
  // The groups and subnet the instance gets, as RunInstances picks them: a network interface's replace the rest.
  for (const group of spec.networkInterface?.groupIds ?? spec.securityGroupIds ?? []) {
    requests.push({ action: "ec2:RunInstances", resource: arn(`security-group/${group}`), context: { ...context, ...tagContext("aws:ResourceTag", store.tagsOf(group)) } });
  }
  const subnetId = spec.networkInterface?.subnetId ?? spec.subnetId;
  const subnet = subnetId === undefined ? undefined : store.subnets.get(subnetId);
  const placement: RequestContext = subnet ? { "ec2:Subnet": arn(`subnet/${subnet.id}`), "ec2:Vpc": arn(`vpc/${subnet.vpcId}`) } : {};
  if (subnet) requests.push({ action: "ec2:RunInstances", resource: arn(`subnet/${subnet.id}`), context: { ...context, "ec2:Vpc": placement["ec2:Vpc"] } });
  requests.push({ action: "ec2:RunInstances", resource: arn("network-interface/*"), context: { ...context, ...placement } });
  for (const type of ["instance", "volume"]) {
    const tags = tagsFor(type);
    if (Object.keys(tags).length) requests.push({ action: "ec2:CreateTags", resource: arn(`${type}/*`), context: { ...tagContext("aws:RequestTag", tags), "ec2:CreateAction": "RunInstances" } });
  }
  if (profileName) {
    const role = source.roleArnOfProfile(profileName);
    if (role) requests.push({ action: "iam:PassRole", resource: role, context: { "iam:PassedToService": "ec2.amazonaws.com" } });
  }
  return requests;
}

/** What an EC2 or IAM emulator answers a call its caller's role does not allow. */
export const unauthorized = (denied: AccessRequest, service: "EC2" | "IAM") =>
  service === "EC2"
    ? new QueryError("UnauthorizedOperation", `You are not authorized to perform this operation. (${denied.action} on ${denied.resource})`, 403)
    : new QueryError("AccessDenied", `User is not authorized to perform: ${denied.action} on resource: ${denied.resource}`, 403);
