// The fleet contract against in-process machines and against EC2 (our emulator) through awsCloud(config).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { CreateLaunchTemplateCommand, CreateSecurityGroupCommand, CreateSubnetCommand, CreateVpcCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { vcpusInUse } from "../../infra/sim/ec2/capacity.ts";
import { awsCloud } from "../../roles/cloud/index.ts";
import { CapacityError } from "../../roles/cloud/types.ts";
import { Ec2Fleet } from "../../roles/cloud/aws/ec2-fleet.ts";
import { LocalFleet } from "../../roles/cloud/local/process-fleet.ts";
import { resourceNames, type Config } from "../../roles/config.ts";
import { createLogger } from "../../roles/log.ts";
import { freshConfig, freshLocalCloud, startAwsTestRegion, type AwsTestRegion } from "./clouds.ts";
import { fleetContract, listUntil } from "./fleet.contract.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

describe("local fleet", () => {
  fleetContract(async ({ bootDelayMs }) => freshLocalCloud(freshConfig({ localBootDelayMs: bootDelayMs })).fleet);

  test("a running instance is a started machine; stop and terminate stop it", async () => {
    const running = new Set<string>();
    const fleet = new LocalFleet(async (id) => {
      running.add(id);
      return { stop: async () => void running.delete(id) };
    });
    const ids = await fleet.launch(2);
    await fleet.settled();
    expect([...running].sort()).toEqual([...ids].sort());
    await fleet.stop([ids[0]!]);
    await fleet.terminate([ids[1]!]);
    await fleet.settled();
    expect(running.size).toBe(0);
    await fleet.start([ids[0]!]);
    await fleet.settled();
    expect([...running]).toEqual([ids[0]!]);
  });

  test("a stop that arrives while the machine is starting stops it once it has started, never showing running", async () => {
    let release = () => {};
    const started = new Promise<void>((resolve) => (release = resolve));
    let stops = 0;
    const fleet = new LocalFleet(async () => {
      await started;
      return {
        async stop() {
          await Bun.sleep(100);
          stops++;
        },
      };
    });
    const [id] = await fleet.launch(1);
    await Bun.sleep(10);
    await fleet.stop([id!]);
    expect(await fleet.list()).toEqual([{ id: id!, state: "stopping" }]);
    release();
    const seen = await listUntil(fleet, id!, (s) => s === "stopped");
    expect(seen).toEqual(["stopping", "stopped"]);
    expect(stops).toBe(1);
  });

  test("a machine that fails to start leaves a stopped instance, logged, and the fleet keeps working", async () => {
    const lines: string[] = [];
    let failures = 1;
    const fleet = new LocalFleet(
      async () => {
        if (failures-- > 0) throw new Error("no memory");
        return { stop: async () => {} };
      },
      0,
      createLogger({}, (line) => lines.push(line)),
    );
    const [id] = await fleet.launch(1);
    await fleet.settled();
    expect(await fleet.list()).toEqual([{ id: id!, state: "stopped" }]);
    expect(JSON.parse(lines[0]!)).toMatchObject({ event: "local_instance_start_failed", instanceId: id, error: "no memory" });
    await fleet.start([id!]);
    await fleet.settled();
    expect(await fleet.list()).toEqual([{ id: id!, state: "running" }]);
  });
});

describe("EC2 fleet", () => {
  let aws: AwsTestRegion;
  let ec2: EC2Client;
  beforeAll(async () => {
    aws = await startAwsTestRegion();
    ec2 = new EC2Client({});
  });
  afterAll(() => aws?.stop());

  /** The deployment's launch template, as infra creates it (the image is the region's stock one here). */
  async function createLaunchTemplate(config: Config): Promise<string> {
    const imageId = Object.values(aws.region.ec2.stockImages)[0]!;
    await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: resourceNames(config).launchTemplate, LaunchTemplateData: { ImageId: imageId, InstanceType: "t3.micro" } }));
    return imageId;
  }

  fleetContract(async ({ bootDelayMs }) => {
    aws.region.ec2.delays.bootDelayMs = bootDelayMs;
    const config = freshConfig();
    await createLaunchTemplate(config);
    return awsCloud(config).fleet;
  });

  test("instances carry the deployment and role tags and the template's image; a running one is a live process, a stopped one none", async () => {
    aws.region.ec2.delays.bootDelayMs = 0;
    const config = freshConfig();
    const imageId = await createLaunchTemplate(config);
    const fleet = awsCloud(config).fleet;
    const [id] = await fleet.launch(1);
    await listUntil(fleet, id!, (s) => s === "running");
    const summary = () => aws.region.ec2.instances().find((i) => i.id === id)!;
    expect(summary()).toMatchObject({ imageId, tags: { Deployment: config.prefix, Role: "app" } });
    expect(summary().pid).toBeNumber();
    await fleet.stop([id!]);
    await listUntil(fleet, id!, (s) => s === "stopped");
    expect(summary().pid).toBeUndefined();
    await fleet.terminate([id!]);
  });

  test("list() sees only this deployment's app instances, over every page", async () => {
    aws.region.ec2.delays.bootDelayMs = 0;
    const config = freshConfig();
    const imageId = await createLaunchTemplate(config);
    const foreign = async (tags: Record<string, string>) =>
      ec2.send(
        new RunInstancesCommand({
          ImageId: imageId,
          MinCount: 1,
          MaxCount: 1,
          TagSpecifications: [{ ResourceType: "instance", Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
        }),
      );
    await foreign({ Deployment: "someone-else", Role: "app" });
    await foreign({ Deployment: config.prefix, Role: "web" });
    await foreign({});
    const fleet = new Ec2Fleet(ec2, { deployment: config.prefix, launchTemplateName: resourceNames(config).launchTemplate, pageSize: 5 });
    const ids = await fleet.launch(7);
    expect((await fleet.list()).map((i) => i.id).sort()).toEqual([...ids].sort());
    await fleet.terminate(ids);
    await listUntil(fleet, ids.at(-1)!, (s) => s === undefined);
  });

  test("past the vCPU quota, a launch takes the instances that fit and a start the ones that fit; none at all is a CapacityError", async () => {
    aws.region.ec2.delays.bootDelayMs = 0;
    const config = freshConfig();
    await createLaunchTemplate(config);
    const fleet = awsCloud(config).fleet;
    const capacity = aws.region.ec2.capacity;
    const [stopped] = await fleet.launch(1);
    await listUntil(fleet, stopped!, (s) => s === "running");
    await fleet.stop([stopped!]);
    await listUntil(fleet, stopped!, (s) => s === "stopped");
    capacity.vcpuQuota = vcpusInUse(aws.region.ec2.store.instances.values()) + 3 * 2;
    try {
      const launched = await fleet.launch(5);
      expect(launched).toHaveLength(3);
      await expect(fleet.launch(1)).rejects.toBeInstanceOf(CapacityError);
      await expect(fleet.start([stopped!])).rejects.toMatchObject({ name: "CapacityError", code: "VcpuLimitExceeded" });
      await fleet.terminate(launched.slice(0, 1));
      for (const id of launched) await listUntil(fleet, id, (s) => s === "running" || s === undefined);
      const [second] = await fleet.launch(1);
      await listUntil(fleet, second!, (s) => s === "running");
      await fleet.stop([second!]);
      await listUntil(fleet, second!, (s) => s === "stopped");
      expect(await fleet.start([stopped!, second!])).toHaveLength(1);
      Object.assign(capacity, { vcpuQuota: Infinity, instancesAvailable: 0 });
      await expect(fleet.launch(1)).rejects.toMatchObject({ name: "CapacityError", code: "InsufficientInstanceCapacity" });
      await fleet.terminate([...launched, stopped!, second!]);
    } finally {
      capacity.vcpuQuota = Infinity;
      capacity.instancesAvailable = undefined;
    }
  });

  test("over several subnets, launches keep the zones even and leave out a zone out of machines, and a start skips it", async () => {
    aws.region.ec2.delays.bootDelayMs = 0;
    const config = freshConfig();
    await createLaunchTemplate(config);
    const { Vpc } = await ec2.send(new CreateVpcCommand({ CidrBlock: "10.8.0.0/16" }));
    const zones = ["a", "b", "c"].map((letter) => `${aws.region.region}${letter}`);
    const subnetIds: string[] = [];
    for (const [index, zone] of zones.entries()) {
      const { Subnet } = await ec2.send(new CreateSubnetCommand({ VpcId: Vpc!.VpcId!, CidrBlock: `10.8.${index}.0/24`, AvailabilityZone: zone }));
      subnetIds.push(Subnet!.SubnetId!);
    }
    const { GroupId } = await ec2.send(new CreateSecurityGroupCommand({ GroupName: `${config.prefix}-spread`, Description: "spread", VpcId: Vpc!.VpcId! }));
    const fleet = awsCloud({ ...config, appNetwork: { subnetIds, securityGroupId: GroupId! } }).fleet;
    const store = aws.region.ec2.store;
    const perZone = (ids: string[]) => zones.map((zone) => ids.filter((id) => store.subnets.get(store.instances.get(id)!.subnetId)!.availabilityZone === zone).length);
    const capacity = aws.region.ec2.capacity;
    const all: string[] = [];
    try {
      all.push(...(await fleet.launch(4)));
      expect(perZone(all)).toEqual([2, 1, 1]);
      expect(all.every((id) => store.instances.get(id)!.securityGroupIds.includes(GroupId!))).toBe(true);
      all.push(...(await fleet.launch(2)));
      expect(perZone(all)).toEqual([2, 2, 2]);
      capacity.exhaustedZones.add(zones[0]!);
      all.push(...(await fleet.launch(4)));
      expect(perZone(all)).toEqual([2, 4, 4]);

      const inZone = (zone: number) => all.find((id) => perZone([id])[zone] === 1)!;
      const stopping = [inZone(0), inZone(1)];
      for (const id of stopping) await listUntil(fleet, id, (s) => s === "running");
      await fleet.stop(stopping);
      for (const id of stopping) await listUntil(fleet, id, (s) => s === "stopped");
      await fleet.list();
      expect(await fleet.start(stopping)).toEqual([stopping[1]!]);
      capacity.exhaustedZones.add(zones[1]!).add(zones[2]!);
      await expect(fleet.launch(1)).rejects.toMatchObject({ name: "CapacityError", code: "InsufficientInstanceCapacity" });
      await expect(fleet.start([stopping[0]!])).rejects.toMatchObject({ name: "CapacityError", code: "InsufficientInstanceCapacity" });
    } finally {
      capacity.exhaustedZones.clear();
      await fleet.terminate(all);
    }
  });

  test("EC2 throttling and server errors are retried with backoff", async () => {
    aws.region.ec2.delays.bootDelayMs = 0;
    const config = freshConfig();
    await createLaunchTemplate(config);
    const fleet = awsCloud(config).fleet;
    const faults = aws.region.faults.ec2;
    const before = faults.injected;
    faults.set({ kind: "throttle", count: 2, operations: ["RunInstances"] });
    const ids = await fleet.launch(2);
    faults.set({ kind: "server-error", count: 2, operations: ["DescribeInstances"] });
    expect((await fleet.list()).map((i) => i.id).sort()).toEqual([...ids].sort());
    faults.clear();
    expect(faults.injected - before).toBe(4);
    expect(ids).toHaveLength(2);
    await fleet.terminate(ids);
  });
});
