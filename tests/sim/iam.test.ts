// The IAM emulator through the real SDK client: roles, inline policies, instance profiles and tags, with IAM's errors;
// and the policy evaluator the emulated region holds each instance's calls to (infra/sim/iam/evaluate.ts).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteInstanceProfileCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
  ListRoleTagsCommand,
  PutRolePolicyCommand,
  RemoveRoleFromInstanceProfileCommand,
  TagRoleCommand,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import type { PolicyDocument, PolicyStatement } from "../../infra/policies.ts";
import { createDefaultVpc } from "../../infra/sim/ec2/actions/networks.ts";
import { Ec2Store } from "../../infra/sim/ec2/model.ts";
import { ec2Access } from "../../infra/sim/iam/access.ts";
import { parseQuery } from "../../infra/sim/query-protocol.ts";
import { evaluate, isAllowed, type RequestContext } from "../../infra/sim/iam/evaluate.ts";
import { startIamEmulator, type IamEmulator } from "../../infra/sim/iam/server.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

let emulator: IamEmulator;
let iam: IAMClient;

beforeAll(() => {
  emulator = startIamEmulator();
  iam = new IAMClient({ endpoint: emulator.endpoint, region: "us-east-1", credentials: { accessKeyId: "test", secretAccessKey: "test" } });
});

afterAll(async () => {
  iam.destroy();
  await emulator.stop();
});

const trust = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }] };
const permissions = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["sqs:SendMessage"], Resource: "arn:aws:sqs:us-east-1:123456789012:q&a" }] };

test("role with an inline policy and tags; documents come back URL-encoded as IAM sends them", async () => {
  const { Role } = await iam.send(
    new CreateRoleCommand({ RoleName: "app-role", AssumeRolePolicyDocument: JSON.stringify(trust), Tags: [{ Key: "Deployment", Value: "iam-test" }] }),
  );
  expect(Role!.Arn).toBe("arn:aws:iam::123456789012:role/app-role");
  await expect(iam.send(new CreateRoleCommand({ RoleName: "app-role", AssumeRolePolicyDocument: "{}" }))).rejects.toMatchObject({ name: "EntityAlreadyExistsException" });
  await iam.send(new PutRolePolicyCommand({ RoleName: "app-role", PolicyName: "queues", PolicyDocument: JSON.stringify(permissions) }));
  const policy = await iam.send(new GetRolePolicyCommand({ RoleName: "app-role", PolicyName: "queues" }));
  expect(JSON.parse(decodeURIComponent(policy.PolicyDocument!))).toEqual(permissions);
  expect((await iam.send(new ListRolePoliciesCommand({ RoleName: "app-role" }))).PolicyNames).toEqual(["queues"]);
  await iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: "app-role", PolicyDocument: JSON.stringify({ ...trust, Statement: [] }) }));
  const { Role: updated } = await iam.send(new GetRoleCommand({ RoleName: "app-role" }));
  expect(JSON.parse(decodeURIComponent(updated!.AssumeRolePolicyDocument!)).Statement).toEqual([]);
  await iam.send(new TagRoleCommand({ RoleName: "app-role", Tags: [{ Key: "Owner", Value: "tests" }] }));
  expect((await iam.send(new ListRoleTagsCommand({ RoleName: "app-role" }))).Tags).toEqual([
    { Key: "Deployment", Value: "iam-test" },
    { Key: "Owner", Value: "tests" },
  ]);
  await expect(iam.send(new PutRolePolicyCommand({ RoleName: "app-role", PolicyName: "bad", PolicyDocument: "{not json" }))).rejects.toMatchObject({
    name: "MalformedPolicyDocumentException",
  });
});

test("instance profile holds one role; deletions in the wrong order conflict; missing things are NoSuchEntity", async () => {
  await iam.send(new CreateRoleCommand({ RoleName: "web-role", AssumeRolePolicyDocument: JSON.stringify(trust) }));
  await iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: "web-profile" }));
  await iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: "web-profile", RoleName: "web-role" }));
  await expect(iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: "web-profile", RoleName: "web-role" }))).rejects.toMatchObject({
    name: "LimitExceededException",
  });
  const { InstanceProfile } = await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: "web-profile" }));
  expect(InstanceProfile!.Roles!.map((role) => role.RoleName)).toEqual(["web-role"]);
  expect(emulator.roleOf("web-profile")).toBe("web-role");
  await expect(iam.send(new DeleteRoleCommand({ RoleName: "web-role" }))).rejects.toMatchObject({ name: "DeleteConflictException" });
  await expect(iam.send(new DeleteInstanceProfileCommand({ InstanceProfileName: "web-profile" }))).rejects.toMatchObject({ name: "DeleteConflictException" });
  await iam.send(new RemoveRoleFromInstanceProfileCommand({ InstanceProfileName: "web-profile", RoleName: "web-role" }));
  await iam.send(new DeleteInstanceProfileCommand({ InstanceProfileName: "web-profile" }));
  await iam.send(new DeleteRoleCommand({ RoleName: "web-role" }));
  await expect(iam.send(new GetRoleCommand({ RoleName: "web-role" }))).rejects.toMatchObject({ name: "NoSuchEntityException", $metadata: { httpStatusCode: 404 } });
  await expect(iam.send(new DeleteRolePolicyCommand({ RoleName: "app-role", PolicyName: "none" }))).rejects.toMatchObject({ name: "NoSuchEntityException" });
});

describe("the policy evaluator", () => {
  const policy = (...Statement: PolicyStatement[]): PolicyDocument => ({ Version: "2012-10-17", Statement });
  const readAll: PolicyStatement = { Sid: "Read", Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::bucket/*" };

  test("an explicit deny wins over any allow; no allow is an implicit deny", () => {
    const secrets: PolicyStatement = { Sid: "NoSecrets", Effect: "Deny", Action: "s3:GetObject", Resource: "arn:aws:s3:::bucket/_secrets/*" };
    const policies = [policy(readAll), policy(secrets)];
    expect(evaluate(policies, { action: "s3:GetObject", resource: "arn:aws:s3:::bucket/photo.jpg" })).toBe("allowed");
    expect(evaluate(policies, { action: "s3:GetObject", resource: "arn:aws:s3:::bucket/_secrets/api-token" })).toBe("explicit-deny");
    expect(evaluate(policies, { action: "s3:PutObject", resource: "arn:aws:s3:::bucket/photo.jpg" })).toBe("implicit-deny");
    expect(evaluate([], { action: "s3:GetObject", resource: "arn:aws:s3:::bucket/photo.jpg" })).toBe("implicit-deny");
  });

  test("wildcards: actions ignore case, '*' spans '/', a bucket pattern does not reach another bucket", () => {
    expect(isAllowed(policy(readAll), { action: "S3:getobject", resource: "arn:aws:s3:::bucket/a/b/c.jpg" })).toBe(true);
    expect(isAllowed(policy(readAll), { action: "s3:GetObject", resource: "arn:aws:s3:::bucket-copy/a.jpg" })).toBe(false);
    expect(isAllowed(policy(readAll), { action: "s3:GetObject", resource: "arn:aws:s3:::bucket" })).toBe(false);
  });

  test("a condition on a missing key fails, unless negated or over all values", () => {
    const tagged = (Condition: PolicyStatement["Condition"]) => policy({ Sid: "Tagged", Effect: "Allow", Action: "ec2:StopInstances", Resource: "*", Condition });
    const request = (context: RequestContext) => ({ action: "ec2:StopInstances", resource: "arn:aws:ec2:us-east-1:123456789012:instance/i-1", context });
    const equals = tagged({ StringEquals: { "aws:ResourceTag/Role": "app" } });
    expect(isAllowed(equals, request({ "aws:ResourceTag/Role": "app" }))).toBe(true);
    expect(isAllowed(equals, request({ "aws:ResourceTag/Role": "web" }))).toBe(false);
    expect(isAllowed(equals, request({}))).toBe(false);
    const notEquals = tagged({ StringNotEquals: { "aws:ResourceTag/Role": "web" } });
    expect(isAllowed(notEquals, request({}))).toBe(true);
    expect(isAllowed(notEquals, request({ "aws:ResourceTag/Role": "web" }))).toBe(false);
    const onlyRoleTags = tagged({ "ForAllValues:StringEquals": { "aws:TagKeys": ["Role", "Deployment"] } });
    expect(isAllowed(onlyRoleTags, request({ "aws:TagKeys": ["Role"] }))).toBe(true);
    expect(isAllowed(onlyRoleTags, request({ "aws:TagKeys": ["Role", "Owner"] }))).toBe(false);
    expect(isAllowed(onlyRoleTags, request({}))).toBe(true);
    const arn = tagged({ ArnLike: { "ec2:LaunchTemplate": "arn:aws:ec2:us-east-1:123456789012:launch-template/lt-1" } });
    expect(isAllowed(arn, request({ "ec2:LaunchTemplate": "arn:aws:ec2:us-east-1:123456789012:launch-template/lt-1" }))).toBe(true);
    expect(isAllowed(arn, request({ "ec2:LaunchTemplate": "arn:aws:ec2:us-east-1:123456789012:launch-template/lt-2" }))).toBe(false);
    const boundedIfStated = tagged({ NumericLessThanEqualsIfExists: { "ec2:VolumeIops": "3000" } });
    expect(isAllowed(boundedIfStated, request({}))).toBe(true);
    expect(isAllowed(boundedIfStated, request({ "ec2:VolumeIops": "3000" }))).toBe(true);
    expect(isAllowed(boundedIfStated, request({ "ec2:VolumeIops": "16000" }))).toBe(false);
    expect(isAllowed(tagged({ StringNotEqualsIfExists: { "aws:ResourceTag/Role": "web" } }), request({ "aws:ResourceTag/Role": "web" }))).toBe(false);
  });

  test("an operator it does not know is an error, never a silent allow or deny", () => {
    const odd = policy({ Sid: "Odd", Effect: "Allow", Action: "s3:GetObject", Resource: "*", Condition: { IpAddress: { "aws:SourceIp": "10.0.0.0/8" } } });
    expect(() => evaluate([odd], { action: "s3:GetObject", resource: "arn:aws:s3:::bucket/a" })).toThrow("IpAddress");
  });
});

describe("the authorizations of a RunInstances", () => {
  const store = new Ec2Store();
  createDefaultVpc(store, "us-east-1");
  const [subnet] = [...store.subnets.keys()];
  for (const [id, deployment] of [["sg-deployment", "alpha"], ["sg-other", undefined]] as const) {
    store.securityGroups.set(id, { id, name: id, description: id, vpcId: "vpc-0emulated0000000", ingress: [], createdAt: 0 });
    if (deployment) store.addTags(id, { Deployment: deployment });
  }
  const templateSpec = { securityGroupIds: ["sg-deployment"], metadataOptions: { httpTokens: "required", httpPutResponseHopLimit: 1 } };
  store.launchTemplates.set("lt-1", { id: "lt-1", name: "alpha-instance", createTime: new Date(), defaultVersion: 1, versions: new Map([[1, { spec: templateSpec, createTime: new Date() }]]) });
  const access = (query: string) => ec2Access("RunInstances", parseQuery(`MinCount=1&MaxCount=1&LaunchTemplate.LaunchTemplateId=lt-1&${query}`), { store, region: "us-east-1", roleArnOfProfile: () => undefined });
  const groupsAsked = (query: string) => access(query).filter((request) => request.resource.includes(":security-group/")).map((request) => [request.resource.split("/").pop(), request.context?.["aws:ResourceTag/Deployment"]]);
  const arn = (resource: string) => `arn:aws:ec2:us-east-1:123456789012:${resource}`;

  test("the groups checked are the ones the instance gets, with their tags: a network interface's replace the template's", () => {
    expect(groupsAsked("")).toEqual([["sg-deployment", "alpha"]]);
    expect(groupsAsked(`NetworkInterface.1.DeviceIndex=0&NetworkInterface.1.SubnetId=${subnet}&NetworkInterface.1.SecurityGroupId.1=sg-other`)).toEqual([["sg-other", undefined]]);
    expect(groupsAsked("SecurityGroupId.1=sg-other")).toEqual([["sg-other", undefined]]);
  });

  test("the instance is checked with the IMDS tokens it gets: the caller's MetadataOptions over the template's", () => {
    const tokensAsked = (query: string) => access(query).find((request) => request.resource === arn("instance/*"))?.context?.["ec2:MetadataHttpTokens"];
    expect(tokensAsked("")).toBe("required");
    expect(tokensAsked("MetadataOptions.HttpTokens=optional")).toBe("optional");
    expect(ec2Access("RunInstances", parseQuery("MinCount=1&MaxCount=1&ImageId=ami-1"), { store, region: "us-east-1", roleArnOfProfile: () => undefined })[0]?.context?.["ec2:MetadataHttpTokens"]).toBe("optional");
  });

  test("the instance is checked with the hop limit and the tenancy it gets: the caller's over the template's, else EC2's", () => {
    const asked = (query: string, key: string) => access(query).find((request) => request.resource === arn("instance/*"))?.context?.[key];
    expect(asked("", "ec2:MetadataHttpPutResponseHopLimit")).toBe("1");
    expect(asked("MetadataOptions.HttpPutResponseHopLimit=3", "ec2:MetadataHttpPutResponseHopLimit")).toBe("3");
    expect(asked("", "ec2:Tenancy")).toBe("default");
    expect(asked("Placement.Tenancy=dedicated", "ec2:Tenancy")).toBe("dedicated");
  });

  test("the subnet and the network interface are checked, with the subnet's VPC", () => {
    const requests = access(`NetworkInterface.1.DeviceIndex=0&NetworkInterface.1.SubnetId=${subnet}&NetworkInterface.1.SecurityGroupId.1=sg-deployment`);
    const template = { "ec2:LaunchTemplate": arn("launch-template/lt-1") };
    expect(requests).toContainEqual({ action: "ec2:RunInstances", resource: arn(`subnet/${subnet}`), context: { ...template, "ec2:Vpc": arn("vpc/vpc-0emulated0000000") } });
    expect(requests).toContainEqual({ action: "ec2:RunInstances", resource: arn("network-interface/*"), context: { ...template, "ec2:Subnet": arn(`subnet/${subnet}`), "ec2:Vpc": arn("vpc/vpc-0emulated0000000") } });
  });
});
