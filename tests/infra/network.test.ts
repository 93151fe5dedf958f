// Where bootstrap puts the deployment: the default VPC, or --vpc-id/--subnet-ids, and a clear stop in an account
// without a default VPC (organisation accounts often have none); against the EC2 emulator in both modes.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { CreateSecurityGroupCommand, CreateSubnetCommand, CreateVpcCommand, DescribeLaunchTemplateVersionsCommand, DescribeSecurityGroupsCommand, DescribeSubnetsCommand, DescribeVpcsCommand, EC2Client } from "@aws-sdk/client-ec2";
import { IAMClient } from "@aws-sdk/client-iam";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readActualState } from "../../infra/actual-state.ts";
import { destroyClients, type AwsClients } from "../../infra/aws.ts";
import { resolveNetwork } from "../../infra/network.ts";
import { desiredState } from "../../infra/plan.ts";
import { newDefaultVersion } from "../../infra/launch-template.ts";
import { appNetworkOf, type DeploymentState } from "../../infra/state.ts";
import { startRegion, type EmulatedRegion } from "../../infra/sim/region.ts";
import { Ec2Fleet } from "../../roles/cloud/aws/ec2-fleet.ts";
import { loadConfig } from "../../roles/config.ts";
import { runInfraScript } from "./run-script.ts";

setDefaultTimeout(30_000);

interface Account {
  region: EmulatedRegion;
  ec2: EC2Client;
  aws: AwsClients;
}

async function account(defaultVpc: boolean): Promise<Account> {
  const region = await startRegion({ defaultVpc, instanceProcess: () => undefined });
  const { clientConfig, endpoints } = region;
  const ec2 = new EC2Client({ ...clientConfig, endpoint: endpoints.ec2 });
  const aws: AwsClients = {
    ec2,
    s3: new S3Client({ ...clientConfig, endpoint: endpoints.s3, forcePathStyle: true }),
    sqs: new SQSClient({ ...clientConfig, endpoint: endpoints.sqs }),
    iam: new IAMClient({ ...clientConfig, endpoint: endpoints.iam }),
    region: region.region,
  };
  return { region, ec2, aws };
}

const subnetsOf = async (ec2: EC2Client, vpcId: string) =>
  ((await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: "vpc-id", Values: [vpcId] }] }))).Subnets ?? []).map((subnet) => subnet.SubnetId!).sort();

describe("an account with a default VPC", () => {
  let it: Account;
  let otherVpc: string;
  beforeAll(async () => {
    it = await account(true);
    otherVpc = (await it.ec2.send(new CreateVpcCommand({ CidrBlock: "10.9.0.0/16" }))).Vpc!.VpcId!;
    await it.ec2.send(new CreateSubnetCommand({ VpcId: otherVpc, CidrBlock: "10.9.1.0/24" }));
    await it.ec2.send(new CreateSubnetCommand({ VpcId: otherVpc, CidrBlock: "10.9.2.0/24" }));
  });
  afterAll(async () => {
    if (it) destroyClients(it.aws);
    await it?.region.stop();
  });

  test("no options: the default VPC, and EC2 picks its default subnets", async () => {
    const { Vpcs } = await it.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: "is-default", Values: ["true"] }] }));
    expect(await resolveNetwork(it.aws, {})).toEqual({ vpcId: Vpcs![0]!.VpcId!, subnetIds: [] });
  });

  test("--vpc-id: that VPC and all its subnets; --subnet-ids: those, whose VPC must be the one named; subnets of two VPCs are refused", async () => {
    const subnets = await subnetsOf(it.ec2, otherVpc);
    expect(await resolveNetwork(it.aws, { vpcId: otherVpc })).toEqual({ vpcId: otherVpc, subnetIds: subnets });
    expect(await resolveNetwork(it.aws, { subnetIds: [subnets[1]!] })).toEqual({ vpcId: otherVpc, subnetIds: [subnets[1]!] });
    const { vpcId: defaultVpc } = await resolveNetwork(it.aws, {});
    const [defaultSubnet] = await subnetsOf(it.ec2, defaultVpc);
    await expect(resolveNetwork(it.aws, { subnetIds: [subnets[0]!, defaultSubnet!] })).rejects.toThrow("are in 2 VPCs");
    await expect(resolveNetwork(it.aws, { vpcId: defaultVpc, subnetIds: [subnets[0]!] })).rejects.toThrow(`not in --vpc-id ${defaultVpc}`);
  });

  test("a group of the deployment's name in another VPC is not adopted as the deployment's", async () => {
    const config = loadConfig({}, { prefix: "vpc-twin" });
    await it.ec2.send(new CreateSecurityGroupCommand({ GroupName: "vpc-twin-web", Description: "someone else's", VpcId: otherVpc }));
    const network = await resolveNetwork(it.aws, {});
    const desired = desiredState(config, { region: it.region.region, ingressCidr: "203.0.113.0/24", appInstanceType: "t3.small", network });
    const actual = await readActualState(it.aws, desired);
    const groups = await it.ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: "group-name", Values: ["vpc-twin-web"] }] }));
    expect(groups.SecurityGroups!.map((group) => group.VpcId)).toEqual([otherVpc]);
    expect(actual.securityGroup).toBeUndefined();
  });
});

describe("an account without a default VPC", () => {
  let it: Account;
  let dir: string;
  beforeAll(async () => {
    it = await account(false);
    dir = mkdtempSync(join(tmpdir(), "facefleet-novpc-"));
  });
  afterAll(async () => {
    if (it) destroyClients(it.aws);
    await it?.region.stop();
  });

  test("bootstrap without --vpc-id stops before creating anything and says what to pass", async () => {
    const before = it.region.ec2.actions.length;
    const run = await runInfraScript(it.region, "bootstrap", ["--ingress-cidr", "203.0.113.0/24"], { prefix: "novpc", stateFile: join(dir, "a.json") });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("has no default VPC in this account");
    expect(run.stderr).toContain("--vpc-id and --subnet-ids");
    expect(it.region.ec2.actions.slice(before).filter((action) => !action.startsWith("Describe"))).toEqual([]);
  });

  test("bootstrap --vpc-id --subnet-ids: the group in that VPC, the launch template's interface in the first subnet, where the controller's instances land", async () => {
    const { Vpcs } = await it.ec2.send(new DescribeVpcsCommand({}));
    const vpcId = Vpcs![0]!.VpcId!;
    const subnets = await subnetsOf(it.ec2, vpcId);
    const stateFile = join(dir, "b.json");
    const run = await runInfraScript(it.region, "bootstrap", ["--ingress-cidr", "203.0.113.0/24", "--vpc-id", vpcId, "--subnet-ids", subnets.join(",")], { prefix: "novpc", stateFile });
    expect(run.code, run.output).toBe(0);
    const state = JSON.parse(readFileSync(stateFile, "utf8")) as { vpcId: string; subnetIds: string[]; securityGroupId: string; launchTemplateId: string };
    expect(state).toMatchObject({ vpcId, subnetIds: subnets });
    const { SecurityGroups } = await it.ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [state.securityGroupId] }));
    expect(SecurityGroups![0]!.VpcId).toBe(vpcId);
    const { LaunchTemplateVersions } = await it.ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: state.launchTemplateId, Versions: ["$Default"] }));
    expect(LaunchTemplateVersions![0]!.LaunchTemplateData!.NetworkInterfaces).toEqual([{ DeviceIndex: 0, SubnetId: subnets[0], Groups: [state.securityGroupId] }]);

    const again = await runInfraScript(it.region, "bootstrap", ["--ingress-cidr", "203.0.113.0/24", "--vpc-id", vpcId, "--subnet-ids", subnets.join(",")], { prefix: "novpc", stateFile });
    expect(again.stdout).toContain("no changes");

    const imageId = Object.values(it.region.ec2.stockImages)[0]!;
    const fleet = new Ec2Fleet(it.ec2, { deployment: "novpc", launchTemplateName: "novpc-instance", imageId });
    const [id] = await fleet.launch(1);
    expect(it.region.ec2.store.instances.get(id!)).toMatchObject({ vpcId, subnetId: subnets[0], securityGroupIds: [state.securityGroupId] });
    await fleet.terminate([id!]);
  });

  /** Bootstrap over the VPC's subnets, then as if baked: launch needs the deployment's image in the state and the template; the stock one stands in. */
  async function bootstrappedAsBaked(prefix: string, stateFileName: string) {
    const { Vpcs } = await it.ec2.send(new DescribeVpcsCommand({}));
    const vpcId = Vpcs![0]!.VpcId!;
    const subnets = await subnetsOf(it.ec2, vpcId);
    const stateFile = join(dir, stateFileName);
    const bootstrap = await runInfraScript(it.region, "bootstrap", ["--ingress-cidr", "203.0.113.0/24", "--vpc-id", vpcId], { prefix, stateFile });
    expect(bootstrap.code, bootstrap.output).toBe(0);
    const imageId = Object.values(it.region.ec2.stockImages)[0]!;
    const state = { ...(JSON.parse(readFileSync(stateFile, "utf8")) as DeploymentState), imageId };
    writeFileSync(stateFile, JSON.stringify(state));
    await newDefaultVersion(it.ec2, state.launchTemplateId!, { ImageId: imageId });
    const store = it.region.ec2.store;
    const subnetCounts = (ids: string[]) => subnets.map((subnet) => ids.filter((id) => store.instances.get(id)!.subnetId === subnet).length);
    return { subnets, stateFile, imageId, state, store, subnetCounts };
  }

  test("launch spreads the warm pool over the subnets, and the controller's launches keep them even, leaving out a zone out of machines", async () => {
    const { subnets, stateFile, imageId, state, store, subnetCounts } = await bootstrappedAsBaked("spread", "c.json");
    const launchRun = await runInfraScript(it.region, "launch", ["--pool", "warm", "--pool-size", "3"], { prefix: "spread", stateFile, env: { FACEFLEET_MAX_APP_INSTANCES: "3" } });
    expect(launchRun.code, launchRun.output).toBe(0);
    const tagged = (role: string) => [...store.instances.values()].filter((instance) => store.tagsOf(instance.id).Deployment === "spread" && store.tagsOf(instance.id).Role === role).map((instance) => instance.id);
    expect(subnetCounts(tagged("app"))).toEqual([2, 1]);
    expect(subnetCounts(tagged("web+controller"))).toEqual([1, 0]);

    const network = appNetworkOf(state)!;
    expect(network).toEqual({ subnetIds: subnets, securityGroupId: state.securityGroupId! });
    const fleet = new Ec2Fleet(it.ec2, { deployment: "spread", launchTemplateName: "spread-instance", imageId, network });
    // The stopped pool holds no machine: the even count is of pending and running instances.
    const launched = await fleet.launch(3);
    expect(subnetCounts(launched)).toEqual([2, 1]);
    expect(subnetCounts(await fleet.launch(1))).toEqual([0, 1]);
    it.region.ec2.capacity.exhaustedZones.add(store.subnets.get(subnets[1]!)!.availabilityZone);
    try {
      expect(subnetCounts(await fleet.launch(2))).toEqual([2, 0]);
    } finally {
      it.region.ec2.capacity.exhaustedZones.clear();
    }
  });

  test("a zone that does not offer the app type (Unsupported) is left out by launch and by the controller's launches and starts", async () => {
    const { subnets, stateFile, imageId, state, store, subnetCounts } = await bootstrappedAsBaked("unoffered", "d.json");
    const unoffered = it.region.ec2.capacity.unofferedTypes;
    unoffered.set(store.subnets.get(subnets[1]!)!.availabilityZone, new Set(["t3.small"]));
    try {
      const launchRun = await runInfraScript(it.region, "launch", ["--pool", "warm", "--pool-size", "3"], { prefix: "unoffered", stateFile, env: { FACEFLEET_MAX_APP_INSTANCES: "3" } });
      expect(launchRun.code, launchRun.output).toBe(0);
      expect(launchRun.stdout).toContain("(Unsupported); the other subnets take its share");
      const pool = [...store.instances.values()].filter((instance) => store.tagsOf(instance.id).Deployment === "unoffered" && store.tagsOf(instance.id).Role === "app");
      expect(subnetCounts(pool.map((instance) => instance.id))).toEqual([3, 0]);
      const fleet = new Ec2Fleet(it.ec2, { deployment: "unoffered", launchTemplateName: "unoffered-instance", imageId, network: appNetworkOf(state)! });
      const launched = await fleet.launch(3);
      expect(subnetCounts(launched)).toEqual([3, 0]);
      // A stopped instance in the zone (the type withdrawn since): its start is refused as capacity, the others start.
      const [inOffered] = launched;
      await fleet.stop(launched);
      unoffered.clear();
      const [inUnoffered] = await fleet.launch(2).then((ids) => ids.filter((id) => store.instances.get(id)!.subnetId === subnets[1]));
      await fleet.stop([inUnoffered!]);
      for (const id of [inOffered!, inUnoffered!]) await until(() => store.instances.get(id)!.state === "stopped");
      unoffered.set(store.subnets.get(subnets[1]!)!.availabilityZone, new Set(["t3.small"]));
      await fleet.list();
      expect(await fleet.start([inUnoffered!, inOffered!])).toEqual([inOffered!]);
      await expect(fleet.start([inUnoffered!])).rejects.toMatchObject({ name: "CapacityError", code: "Unsupported" });
    } finally {
      unoffered.clear();
    }
  });
});

async function until(check: () => boolean): Promise<void> {
  for (let tries = 0; !check(); tries++) {
    if (tries > 200) throw new Error("timed out");
    await Bun.sleep(25);
  }
}
