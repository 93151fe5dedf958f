// The EC2 emulator through the real SDK client: the answers parse, filters and pages behave as EC2's, errors are
// the SDK's named exceptions.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateImageCommand,
  CreateLaunchTemplateCommand,
  CreateLaunchTemplateVersionCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateTagsCommand,
  CreateVpcCommand,
  DeleteLaunchTemplateCommand,
  DeleteSecurityGroupCommand,
  DeleteTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  DescribeTagsCommand,
  EC2Client,
  ModifyLaunchTemplateCommand,
  paginateDescribeInstances,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
} from "@aws-sdk/client-ec2";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { vcpusInUse } from "../../infra/sim/ec2/capacity.ts";
import { startEc2Emulator, type Ec2Emulator } from "../../infra/sim/ec2/server.ts";

let emulator: Ec2Emulator;
/** Instance profiles "created in IAM", by name: when. */
const profiles = new Map<string, number>();
let ec2: EC2Client;
let stockImage: string;

beforeAll(() => {
  emulator = startEc2Emulator({ logDir: mkdtempSync(join(tmpdir(), "ec2-emulator-")), stopDelayMs: 30, instanceProfileCreatedAt: (name) => profiles.get(name) });
  ec2 = new EC2Client({ endpoint: emulator.endpoint, region: "us-east-1", credentials: { accessKeyId: "test", secretAccessKey: "test" } });
  stockImage = Object.values(emulator.stockImages)[0]!;
});

afterAll(async () => {
  ec2.destroy();
  await emulator.stop();
});

const tagList = (tags: Record<string, string>) => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

async function run(count: number, tags: Record<string, string>): Promise<Instance[]> {
  const { Instances } = await ec2.send(
    new RunInstancesCommand({ ImageId: stockImage, InstanceType: "t3.small", MinCount: count, MaxCount: count, TagSpecifications: [{ ResourceType: "instance", Tags: tagList(tags) }] }),
  );
  return Instances!;
}

async function describeAll(filters: { Name: string; Values: string[] }[], pageSize?: number): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let pages = 0;
  for await (const page of paginateDescribeInstances({ client: ec2, pageSize }, { Filters: filters })) {
    pages += 1;
    for (const reservation of page.Reservations ?? []) for (const instance of reservation.Instances ?? []) ids.push(instance.InstanceId!);
  }
  return { ids, pages };
}

describe("instances", () => {
  test("RunInstances answers pending instances with their tags; they turn running", async () => {
    const [instance] = await run(1, { Role: "web", Deployment: "ec2-test-a" });
    expect(instance!.State).toEqual({ Code: 0, Name: "pending" });
    expect(instance!.InstanceType).toBe("t3.small");
    expect(instance!.Tags).toEqual(tagList({ Role: "web", Deployment: "ec2-test-a" }));
    await emulator.waitForState(instance!.InstanceId!, "running");
  });

  test("DescribeInstances filters on tag:<Key>, tag-key, instance-state-name and image-id, and pages with NextToken", async () => {
    const apps = await run(7, { Role: "app", Deployment: "ec2-test-b" });
    await run(2, { Role: "web", Deployment: "ec2-test-b" });
    for (const app of apps) await emulator.waitForState(app.InstanceId!, "running");
    const appIds = apps.map((app) => app.InstanceId!).sort();

    const paged = await describeAll([{ Name: "tag:Deployment", Values: ["ec2-test-b"] }, { Name: "tag:Role", Values: ["app"] }], 5);
    expect(paged.ids.sort()).toEqual(appIds);
    expect(paged.pages).toBe(2);

    expect((await describeAll([{ Name: "tag:Deployment", Values: ["ec2-test-*"] }, { Name: "tag-key", Values: ["Role"] }])).ids.length).toBeGreaterThanOrEqual(9);
    await ec2.send(new StopInstancesCommand({ InstanceIds: appIds.slice(0, 3) }));
    for (const id of appIds.slice(0, 3)) await emulator.waitForState(id, "stopped");
    const running = await describeAll([
      { Name: "tag:Deployment", Values: ["ec2-test-b"] },
      { Name: "tag:Role", Values: ["app"] },
      { Name: "instance-state-name", Values: ["pending", "running"] },
      { Name: "image-id", Values: [stockImage] },
    ]);
    expect(running.ids.sort()).toEqual(appIds.slice(3));
    expect((await describeAll([{ Name: "tag:Deployment", Values: ["nobody"] }])).ids).toEqual([]);
  });

  test("start, stop and terminate answer previous and current states and walk the EC2 state machine", async () => {
    const [instance] = await run(1, { Role: "app", Deployment: "ec2-test-c" });
    const id = instance!.InstanceId!;
    await emulator.waitForState(id, "running");
    const stopped = await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    expect(stopped.StoppingInstances).toEqual([{ InstanceId: id, PreviousState: { Code: 16, Name: "running" }, CurrentState: { Code: 64, Name: "stopping" } }]);
    await emulator.waitForState(id, "stopped");
    const started = await ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
    expect(started.StartingInstances![0]).toMatchObject({ PreviousState: { Name: "stopped" }, CurrentState: { Name: "pending" } });
    await emulator.waitForState(id, "running");
    const terminated = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(terminated.TerminatingInstances![0]).toMatchObject({ PreviousState: { Name: "running" }, CurrentState: { Code: 32, Name: "shutting-down" } });
    await emulator.waitForState(id, "terminated");
    await expect(ec2.send(new StartInstancesCommand({ InstanceIds: [id] }))).rejects.toMatchObject({ name: "IncorrectInstanceState", $metadata: { httpStatusCode: 400 } });
  });

  test("a launch takes the boot delay; a start of a stopped instance the start delay, or the boot delay when none is set", async () => {
    const untilRunning = async (enterPending: () => Promise<string>) => {
      const started = performance.now();
      await emulator.waitForState(await enterPending(), "running");
      return performance.now() - started;
    };
    const launch = async () => (await run(1, { Role: "app", Deployment: "ec2-test-delays" }))[0]!.InstanceId!;
    const stop = async (id: string) => {
      await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
      await emulator.waitForState(id, "stopped");
    };
    const start = (id: string) => async () => {
      await ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
      return id;
    };
    try {
      Object.assign(emulator.delays, { bootDelayMs: 1000, startDelayMs: 50 });
      let id = "";
      expect(await untilRunning(async () => (id = await launch()))).toBeGreaterThanOrEqual(1000);
      await stop(id);
      const quickStart = await untilRunning(start(id));
      expect(quickStart).toBeGreaterThanOrEqual(50);
      expect(quickStart).toBeLessThan(1000);
      emulator.delays.startDelayMs = undefined;
      await stop(id);
      expect(await untilRunning(start(id))).toBeGreaterThanOrEqual(1000);
    } finally {
      Object.assign(emulator.delays, { bootDelayMs: 0, startDelayMs: undefined });
    }
  });

  test("with a read-after-create lag, a new instance is NotFound by its id until the lag has passed, as EC2 may answer", async () => {
    emulator.delays.readAfterCreateLagMs = 300;
    try {
      const [instance] = await run(1, { Role: "app", Deployment: "ec2-test-lag" });
      const describe = () => ec2.send(new DescribeInstancesCommand({ InstanceIds: [instance!.InstanceId!] }));
      await expect(describe()).rejects.toMatchObject({ name: "InvalidInstanceID.NotFound" });
      await Bun.sleep(300);
      expect((await describe()).Reservations?.[0]?.Instances?.[0]?.InstanceId).toBe(instance!.InstanceId);
    } finally {
      emulator.delays.readAfterCreateLagMs = 0;
    }
  });

  test("a pending instance cannot be stopped yet, as on EC2", async () => {
    emulator.delays.bootDelayMs = 500;
    try {
      const [instance] = await run(1, { Role: "app", Deployment: "ec2-test-pending" });
      await expect(ec2.send(new StopInstancesCommand({ InstanceIds: [instance!.InstanceId!] }))).rejects.toMatchObject({ name: "IncorrectInstanceState" });
      await emulator.waitForState(instance!.InstanceId!, "running");
    } finally {
      emulator.delays.bootDelayMs = 0;
    }
  });

  test("the vCPU quota counts pending and running instances: a launch past it gives what fits above MinCount, or VcpuLimitExceeded", async () => {
    const inUse = vcpusInUse(emulator.store.instances.values());
    emulator.capacity.vcpuQuota = inUse + 6;
    try {
      const launch = (min: number, max: number) =>
        ec2.send(new RunInstancesCommand({ ImageId: stockImage, InstanceType: "t3.small", MinCount: min, MaxCount: max, TagSpecifications: [{ ResourceType: "instance", Tags: tagList({ Deployment: "ec2-test-quota" }) }] }));
      await expect(launch(4, 4)).rejects.toMatchObject({ name: "VcpuLimitExceeded", message: expect.stringContaining(`limit of ${inUse + 6}`) });
      const partial = await launch(1, 5);
      expect(partial.Instances).toHaveLength(3);
      await expect(launch(1, 1)).rejects.toMatchObject({ name: "VcpuLimitExceeded" });
      const [first, ...others] = partial.Instances!.map((instance) => instance.InstanceId!);
      for (const id of [first!, ...others]) await emulator.waitForState(id, "running");
      await ec2.send(new StopInstancesCommand({ InstanceIds: [first!] }));
      await emulator.waitForState(first!, "stopped");
      expect((await launch(1, 1)).Instances).toHaveLength(1);
      await expect(ec2.send(new StartInstancesCommand({ InstanceIds: [first!] }))).rejects.toMatchObject({ name: "VcpuLimitExceeded" });
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: others }));
      await ec2.send(new StartInstancesCommand({ InstanceIds: [first!] }));
    } finally {
      emulator.capacity.vcpuQuota = Infinity;
    }
  });

  test("a zone out of capacity answers InsufficientInstanceCapacity to launches beyond MinCount's reach and to starts", async () => {
    const [instance] = await run(1, { Deployment: "ec2-test-ice" });
    const id = instance!.InstanceId!;
    await emulator.waitForState(id, "running");
    await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    await emulator.waitForState(id, "stopped");
    emulator.capacity.instancesAvailable = 2;
    try {
      await expect(run(3, { Deployment: "ec2-test-ice" })).rejects.toMatchObject({ name: "InsufficientInstanceCapacity", message: expect.stringContaining("t3.small capacity") });
      const { Instances } = await ec2.send(new RunInstancesCommand({ ImageId: stockImage, InstanceType: "t3.small", MinCount: 1, MaxCount: 3 }));
      expect(Instances).toHaveLength(2);
      await expect(ec2.send(new StartInstancesCommand({ InstanceIds: [id] }))).rejects.toMatchObject({ name: "InsufficientInstanceCapacity" });
      emulator.capacity.instancesAvailable = 1;
      await ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
      expect(emulator.capacity.instancesAvailable).toBe(0);
    } finally {
      emulator.capacity.instancesAvailable = undefined;
    }
  });

  test("errors are the SDK's named exceptions with EC2's codes", async () => {
    await expect(ec2.send(new DescribeInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] }))).rejects.toMatchObject({ name: "InvalidInstanceID.NotFound" });
    await expect(ec2.send(new RunInstancesCommand({ ImageId: "ami-00000000000000bad", MinCount: 1, MaxCount: 1 }))).rejects.toMatchObject({ name: "InvalidAMIID.NotFound" });
    await expect(ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "no-such-filter", Values: ["x"] }] }))).rejects.toMatchObject({ name: "InvalidParameterValue" });
  });
});

describe("tags", () => {
  test("CreateTags, DescribeTags by resource-id and key, DeleteTags", async () => {
    const [instance] = await run(1, { Role: "app" });
    const id = instance!.InstanceId!;
    await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: tagList({ Owner: "tests", Stage: "one" }) }));
    const { Tags } = await ec2.send(new DescribeTagsCommand({ Filters: [{ Name: "resource-id", Values: [id] }] }));
    expect(Tags!.map((tag) => [tag.Key, tag.Value, tag.ResourceType]).sort()).toEqual([
      ["Owner", "tests", "instance"],
      ["Role", "app", "instance"],
      ["Stage", "one", "instance"],
    ]);
    await ec2.send(new DeleteTagsCommand({ Resources: [id], Tags: [{ Key: "Stage" }, { Key: "Owner", Value: "someone else" }] }));
    const left = await ec2.send(new DescribeTagsCommand({ Filters: [{ Name: "resource-id", Values: [id] }, { Name: "key", Values: ["Owner", "Stage"] }] }));
    expect(left.Tags!.map((tag) => tag.Key)).toEqual(["Owner"]);
    await expect(ec2.send(new CreateTagsCommand({ Resources: ["i-00000000000000bad"], Tags: tagList({ A: "b" }) }))).rejects.toMatchObject({ name: "InvalidInstanceID.NotFound" });
  });
});

describe("images, security groups, launch templates", () => {
  test("CreateImage from an instance, DescribeImages by tag, DeregisterImage", async () => {
    const [builder] = await run(1, { Role: "builder" });
    const { ImageId } = await ec2.send(
      new CreateImageCommand({ InstanceId: builder!.InstanceId!, Name: "facefleet-test-1", TagSpecifications: [{ ResourceType: "image", Tags: tagList({ Deployment: "img" }) }] }),
    );
    const { Images } = await ec2.send(new DescribeImagesCommand({ Owners: ["self"], Filters: [{ Name: "tag:Deployment", Values: ["img"] }] }));
    expect(Images!.map((image) => [image.ImageId, image.Name, image.State])).toEqual([[ImageId, "facefleet-test-1", "available"]]);
    await expect(ec2.send(new CreateImageCommand({ InstanceId: builder!.InstanceId!, Name: "facefleet-test-1" }))).rejects.toMatchObject({ name: "InvalidAMIName.Duplicate" });
    await ec2.send(new DeregisterImageCommand({ ImageId }));
    await expect(ec2.send(new DescribeImagesCommand({ ImageIds: [ImageId!] }))).rejects.toMatchObject({ name: "InvalidAMIID.NotFound" });
  });

  test("security group with an ingress rule; a duplicate rule and deleting a group in use are refused", async () => {
    const { GroupId } = await ec2.send(
      new CreateSecurityGroupCommand({ GroupName: "ec2-test-web", Description: "web tier", TagSpecifications: [{ ResourceType: "security-group", Tags: tagList({ Deployment: "sg" }) }] }),
    );
    const rule = { GroupId, IpPermissions: [{ IpProtocol: "tcp", FromPort: 8000, ToPort: 8000, IpRanges: [{ CidrIp: "203.0.113.0/24" }] }] };
    await ec2.send(new AuthorizeSecurityGroupIngressCommand(rule));
    await expect(ec2.send(new AuthorizeSecurityGroupIngressCommand(rule))).rejects.toMatchObject({ name: "InvalidPermission.Duplicate" });
    const { SecurityGroups } = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: "tag:Deployment", Values: ["sg"] }] }));
    expect(SecurityGroups).toHaveLength(1);
    expect(SecurityGroups![0]!.IpPermissions).toMatchObject([{ IpProtocol: "tcp", FromPort: 8000, ToPort: 8000, IpRanges: [{ CidrIp: "203.0.113.0/24" }] }]);
    const { Instances } = await ec2.send(new RunInstancesCommand({ ImageId: stockImage, MinCount: 1, MaxCount: 1, SecurityGroupIds: [GroupId!] }));
    expect(Instances![0]!.SecurityGroups).toEqual([{ GroupId, GroupName: "ec2-test-web" }]);
    await expect(ec2.send(new DeleteSecurityGroupCommand({ GroupId }))).rejects.toMatchObject({ name: "DependencyViolation" });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [Instances![0]!.InstanceId!] }));
    await emulator.waitForState(Instances![0]!.InstanceId!, "terminated");
    await ec2.send(new DeleteSecurityGroupCommand({ GroupId }));
  });

  test("RunInstances from a launch template takes its image, metadata options and tags; the request's own settings win", async () => {
    const { LaunchTemplate } = await ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: "ec2-test-template",
        LaunchTemplateData: {
          ImageId: stockImage,
          InstanceType: "c5.large",
          MetadataOptions: { HttpTokens: "required", InstanceMetadataTags: "enabled" },
          TagSpecifications: [{ ResourceType: "instance", Tags: tagList({ Deployment: "lt" }) }],
        },
      }),
    );
    const { LaunchTemplateVersion } = await ec2.send(
      new CreateLaunchTemplateVersionCommand({ LaunchTemplateId: LaunchTemplate!.LaunchTemplateId, SourceVersion: "1", LaunchTemplateData: { InstanceType: "c5.xlarge" } }),
    );
    expect(LaunchTemplateVersion!.VersionNumber).toBe(2);
    await ec2.send(new ModifyLaunchTemplateCommand({ LaunchTemplateId: LaunchTemplate!.LaunchTemplateId, DefaultVersion: "2" }));
    const { Instances } = await ec2.send(
      new RunInstancesCommand({
        MinCount: 1,
        MaxCount: 1,
        LaunchTemplate: { LaunchTemplateName: "ec2-test-template", Version: "$Default" },
        TagSpecifications: [{ ResourceType: "instance", Tags: tagList({ Role: "app" }) }],
      }),
    );
    expect(Instances![0]).toMatchObject({
      ImageId: stockImage,
      InstanceType: "c5.xlarge",
      MetadataOptions: { HttpTokens: "required", InstanceMetadataTags: "enabled" },
      Tags: tagList({ Deployment: "lt", Role: "app" }),
    });
    const described = await ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateNames: ["ec2-test-template"] }));
    expect(described.LaunchTemplates![0]).toMatchObject({ DefaultVersionNumber: 2, LatestVersionNumber: 2 });
    await ec2.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId: LaunchTemplate!.LaunchTemplateId }));
    await expect(ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateIds: [LaunchTemplate!.LaunchTemplateId!] }))).rejects.toMatchObject({
      name: "InvalidLaunchTemplateId.NotFound",
    });
  });
});

describe("eventual consistency after creates", () => {
  test("a new security group is NotFound to AuthorizeSecurityGroupIngress and CreateTags until the lag has passed", async () => {
    emulator.delays.securityGroupLagMs = 300;
    try {
      const { GroupId } = await ec2.send(new CreateSecurityGroupCommand({ GroupName: "ec2-test-lagging", Description: "lag" }));
      const rule = { GroupId, IpPermissions: [{ IpProtocol: "tcp", FromPort: 8000, ToPort: 8000, IpRanges: [{ CidrIp: "203.0.113.0/24" }] }] };
      await expect(ec2.send(new AuthorizeSecurityGroupIngressCommand(rule))).rejects.toMatchObject({ name: "InvalidGroup.NotFound" });
      await expect(ec2.send(new CreateTagsCommand({ Resources: [GroupId!], Tags: tagList({ A: "b" }) }))).rejects.toMatchObject({ name: "InvalidGroup.NotFound" });
      await Bun.sleep(300);
      await ec2.send(new AuthorizeSecurityGroupIngressCommand(rule));
      await ec2.send(new CreateTagsCommand({ Resources: [GroupId!], Tags: tagList({ A: "b" }) }));
      await ec2.send(new DeleteSecurityGroupCommand({ GroupId }));
    } finally {
      emulator.delays.securityGroupLagMs = 0;
    }
  });

  test("a new instance profile is refused by RunInstances and CreateLaunchTemplate for a while, an unknown one always", async () => {
    emulator.delays.instanceProfileLagMs = 300;
    try {
      profiles.set("ec2-test-profile", Date.now());
      const launch = (name: string) => ec2.send(new RunInstancesCommand({ ImageId: stockImage, MinCount: 1, MaxCount: 1, IamInstanceProfile: { Name: name } }));
      const template = () =>
        ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: "ec2-test-profiled", LaunchTemplateData: { ImageId: stockImage, IamInstanceProfile: { Name: "ec2-test-profile" } } }));
      await expect(launch("ec2-test-profile")).rejects.toMatchObject({ name: "InvalidParameterValue", message: expect.stringContaining("Invalid IAM Instance Profile name") });
      await expect(template()).rejects.toMatchObject({ name: "InvalidParameterValue" });
      await Bun.sleep(300);
      const { Instances } = await launch("ec2-test-profile");
      await template();
      await expect(launch("ec2-test-no-such-profile")).rejects.toMatchObject({ name: "InvalidParameterValue" });
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: [Instances![0]!.InstanceId!] }));
    } finally {
      emulator.delays.instanceProfileLagMs = 0;
    }
  });
});

describe("VPCs and subnets", () => {
  test("an account has a default VPC with a default subnet per zone, where instances land unless told otherwise", async () => {
    const { Vpcs } = await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: "is-default", Values: ["true"] }] }));
    expect(Vpcs).toHaveLength(1);
    const { Subnets } = await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: "vpc-id", Values: [Vpcs![0]!.VpcId!] }] }));
    expect(Subnets!.map((subnet) => [subnet.AvailabilityZone, subnet.DefaultForAz])).toEqual([
      ["us-east-1a", true],
      ["us-east-1b", true],
    ]);
    const [instance] = await run(1, { Deployment: "ec2-test-vpc" });
    expect([instance!.VpcId, instance!.SubnetId]).toEqual([Vpcs![0]!.VpcId, Subnets![0]!.SubnetId]);
  });

  test("a subnet, or a launch template's network interface, puts an instance in another VPC; a group name is unique per VPC only", async () => {
    const { Vpc } = await ec2.send(new CreateVpcCommand({ CidrBlock: "10.1.0.0/16" }));
    const { Subnet } = await ec2.send(new CreateSubnetCommand({ VpcId: Vpc!.VpcId, CidrBlock: "10.1.1.0/24", AvailabilityZone: "us-east-1b" }));
    const { GroupId } = await ec2.send(new CreateSecurityGroupCommand({ GroupName: "ec2-test-twin", Description: "default VPC" }));
    const twin = await ec2.send(new CreateSecurityGroupCommand({ GroupName: "ec2-test-twin", Description: "other VPC", VpcId: Vpc!.VpcId }));
    await expect(ec2.send(new CreateSecurityGroupCommand({ GroupName: "ec2-test-twin", Description: "again", VpcId: Vpc!.VpcId }))).rejects.toMatchObject({ name: "InvalidGroup.Duplicate" });
    const byName = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: "group-name", Values: ["ec2-test-twin"] }] }));
    expect(byName.SecurityGroups!.map((group) => group.GroupId).sort()).toEqual([GroupId, twin.GroupId].sort());
    const inVpc = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: "group-name", Values: ["ec2-test-twin"] }, { Name: "vpc-id", Values: [Vpc!.VpcId!] }] }));
    expect(inVpc.SecurityGroups!.map((group) => group.GroupId)).toEqual([twin.GroupId]);

    const direct = await ec2.send(new RunInstancesCommand({ ImageId: stockImage, MinCount: 1, MaxCount: 1, SubnetId: Subnet!.SubnetId }));
    expect(direct.Instances![0]).toMatchObject({ VpcId: Vpc!.VpcId, SubnetId: Subnet!.SubnetId });
    await ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: "ec2-test-in-vpc",
        LaunchTemplateData: { ImageId: stockImage, NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: Subnet!.SubnetId, Groups: [twin.GroupId!] }] },
      }),
    );
    const { LaunchTemplateVersions } = await ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateName: "ec2-test-in-vpc", Versions: ["$Default"] }));
    expect(LaunchTemplateVersions![0]!.LaunchTemplateData!.NetworkInterfaces).toEqual([{ DeviceIndex: 0, SubnetId: Subnet!.SubnetId, Groups: [twin.GroupId!] }]);
    const templated = await ec2.send(new RunInstancesCommand({ MinCount: 1, MaxCount: 1, LaunchTemplate: { LaunchTemplateName: "ec2-test-in-vpc" } }));
    expect(templated.Instances![0]).toMatchObject({ VpcId: Vpc!.VpcId, SubnetId: Subnet!.SubnetId, SecurityGroups: [{ GroupId: twin.GroupId }] });
    await expect(ec2.send(new RunInstancesCommand({ ImageId: stockImage, MinCount: 1, MaxCount: 1, SubnetId: "subnet-00000000000000bad" }))).rejects.toMatchObject({
      name: "InvalidSubnetID.NotFound",
    });
  });

  test("an account without a default VPC: a group needs a VpcId and an instance a subnet, or EC2 answers VPCIdNotSpecified", async () => {
    const bare = startEc2Emulator({ logDir: mkdtempSync(join(tmpdir(), "ec2-emulator-")), defaultVpc: false });
    const client = new EC2Client({ endpoint: bare.endpoint, region: "us-east-1", credentials: { accessKeyId: "test", secretAccessKey: "test" } });
    try {
      const { Vpcs } = await client.send(new DescribeVpcsCommand({}));
      expect(Vpcs!.map((vpc) => vpc.IsDefault)).toEqual([false]);
      expect((await client.send(new DescribeVpcsCommand({ Filters: [{ Name: "is-default", Values: ["true"] }] }))).Vpcs).toEqual([]);
      const image = Object.values(bare.stockImages)[0]!;
      await expect(client.send(new CreateSecurityGroupCommand({ GroupName: "web", Description: "web" }))).rejects.toMatchObject({ name: "VPCIdNotSpecified" });
      await expect(client.send(new RunInstancesCommand({ ImageId: image, MinCount: 1, MaxCount: 1 }))).rejects.toMatchObject({ name: "VPCIdNotSpecified" });
      const { Subnets } = await client.send(new DescribeSubnetsCommand({ Filters: [{ Name: "vpc-id", Values: [Vpcs![0]!.VpcId!] }] }));
      expect(Subnets).toHaveLength(2);
      const { Instances } = await client.send(new RunInstancesCommand({ ImageId: image, MinCount: 1, MaxCount: 1, SubnetId: Subnets![1]!.SubnetId }));
      expect(Instances![0]!.VpcId).toBe(Vpcs![0]!.VpcId);
    } finally {
      client.destroy();
      await bare.stop();
    }
  });
});

