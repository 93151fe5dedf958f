// The IAM emulator through the real SDK client: roles, inline policies, instance profiles and tags, with IAM's errors.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
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
