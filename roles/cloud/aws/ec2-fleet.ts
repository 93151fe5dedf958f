/** The deployment's app instances on EC2: found by their Deployment and Role tags. */
import {
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { APP_ROLE_TAG_VALUE, DEPLOYMENT_TAG, ROLE_TAG } from "../../deployment.ts";
import { CapacityError, type AppInstance, type Fleet, type InstanceState } from "../types.ts";
import { refusedByZone, spreadOverSubnets, ZONE_REFUSAL_CODES } from "./zone-spread.ts";

export interface Ec2FleetOptions {
  /** The value of every instance's Deployment tag (the resource prefix). */
  deployment: string;
  launchTemplateName: string;
  /** Overrides the launch template's image. */
  imageId?: string;
  /** DescribeInstances page size (EC2 allows 5..1000). */
  pageSize?: number;
  /**
   * Subnets (one per zone) new instances are spread over, with the security group their network interface names;
   * none: the launch template's subnet.
   */
  network?: { subnetIds: string[]; securityGroupId: string };
}

const LIVE_STATES: InstanceState[] = ["pending", "running", "stopping", "stopped", "shutting-down"];
const ACTIVE_STATES: ReadonlySet<InstanceState> = new Set(["pending", "running"]);
/** States whose StateReason says why the instance went down (the controller tells a failed boot by it). */
const DOWN_STATES: ReadonlySet<InstanceState> = new Set(["stopped", "shutting-down"]);

/** EC2's answers when it cannot give an instance now (or not in that zone). */
const CAPACITY_CODES = new Set(["VcpuLimitExceeded", "InstanceLimitExceeded", ...ZONE_REFUSAL_CODES]);

/** Runs one EC2 call, turning its capacity errors into a CapacityError. */
async function capacityChecked<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const name = (error as Error).name;
    if (CAPACITY_CODES.has(name)) throw new CapacityError(name, (error as Error).message);
    throw error;
  }
}

export class Ec2Fleet implements Fleet {
  /** Each instance's subnet, as last listed. */
  private readonly subnetOf = new Map<string, string>();

  constructor(
    private readonly client: EC2Client,
    private readonly options: Ec2FleetOptions,
  ) {}

  async list(): Promise<AppInstance[]> {
    const instances: AppInstance[] = [];
    this.subnetOf.clear();
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: `tag:${DEPLOYMENT_TAG}`, Values: [this.options.deployment] },
            { Name: `tag:${ROLE_TAG}`, Values: [APP_ROLE_TAG_VALUE] },
            { Name: "instance-state-name", Values: LIVE_STATES },
          ],
          MaxResults: this.options.pageSize ?? 1000,
          NextToken: token,
        }),
      );
      for (const reservation of page.Reservations ?? []) {
        for (const instance of reservation.Instances ?? []) {
          if (!instance.InstanceId || !instance.State?.Name) continue;
          const state = instance.State.Name as InstanceState;
          const stateReason = DOWN_STATES.has(state) ? instance.StateReason?.Code : undefined;
          instances.push({ id: instance.InstanceId, state, ...(stateReason && { stateReason }) });
          if (instance.SubnetId) this.subnetOf.set(instance.InstanceId, instance.SubnetId);
        }
      }
      token = page.NextToken;
    } while (token);
    return instances;
  }

  /**
   * Over several subnets: each gets its share of the instances, so the zones stay even. A zone out of machines or
   * without the type is left out and its share goes to the others; the account's quota (the same in every zone) ends the launch.
   */
  async launch(count: number): Promise<string[]> {
    if (count <= 0) return [];
    const subnets = this.options.network?.subnetIds ?? [];
    if (subnets.length === 0) return this.runInstances(count);
    const holding = new Map<string, number>();
    for (const instance of await this.list()) {
      const subnet = this.subnetOf.get(instance.id);
      if (subnet && ACTIVE_STATES.has(instance.state)) holding.set(subnet, (holding.get(subnet) ?? 0) + 1);
    }
    const launched: string[] = [];
    let usable = [...subnets];
    let refusal: CapacityError | undefined;
    spreading: while (launched.length < count && usable.length > 0) {
      for (const [subnet, share] of spreadOverSubnets(holding, usable, count - launched.length)) {
        let ids: string[] = [];
        try {
          ids = await this.runInstances(share, subnet);
        } catch (error) {
          if (!(error instanceof CapacityError)) throw error;
          refusal = error;
          if (!refusedByZone(error.code)) break spreading;
        }
        launched.push(...ids);
        holding.set(subnet, (holding.get(subnet) ?? 0) + ids.length);
        // A zone that gave fewer than asked has given what it has.
        if (ids.length < share) usable = usable.filter((other) => other !== subnet);
      }
    }
    if (launched.length === 0 && refusal) throw refusal;
    return launched;
  }

  private async runInstances(count: number, subnetId?: string): Promise<string[]> {
    const tags = [
      { Key: DEPLOYMENT_TAG, Value: this.options.deployment },
      { Key: ROLE_TAG, Value: APP_ROLE_TAG_VALUE },
    ];
    const groupId = this.options.network?.securityGroupId;
    // MinCount 1: EC2 launches as many as its quota and capacity allow, where MinCount = count would launch none.
    const result = await capacityChecked(() =>
      this.client.send(
        new RunInstancesCommand({
          MinCount: 1,
          MaxCount: count,
          LaunchTemplate: { LaunchTemplateName: this.options.launchTemplateName, Version: "$Default" },
          ImageId: this.options.imageId,
          // Replaces the template's network interface (its subnet is the first one).
          ...(subnetId && groupId && { NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: subnetId, Groups: [groupId] }] }),
          TagSpecifications: [{ ResourceType: "instance", Tags: tags }],
        }),
      ),
    );
    return (result.Instances ?? []).flatMap((instance) => {
      if (instance.InstanceId && instance.SubnetId) this.subnetOf.set(instance.InstanceId, instance.SubnetId);
      return instance.InstanceId ? [instance.InstanceId] : [];
    });
  }

  /**
   * EC2 starts all of a call's instances or none: when it cannot start them all, they are started one at a time, so
   * the capacity there is gets used. A zone out of machines or without the type is skipped; the account's quota ends the start.
   */
  async start(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const startBatch = async (batch: string[]) => {
      const result = await capacityChecked(() => this.client.send(new StartInstancesCommand({ InstanceIds: batch })));
      return (result.StartingInstances ?? []).flatMap((instance) => (instance.InstanceId ? [instance.InstanceId] : []));
    };
    try {
      return await startBatch(ids);
    } catch (error) {
      if (!(error instanceof CapacityError) || ids.length === 1) throw error;
    }
    const started: string[] = [];
    const exhausted = new Set<string>();
    let refusal: CapacityError | undefined;
    for (const id of ids) {
      const subnet = this.subnetOf.get(id);
      if (subnet !== undefined && exhausted.has(subnet)) continue;
      try {
        started.push(...(await startBatch([id])));
      } catch (error) {
        if (!(error instanceof CapacityError)) throw error;
        refusal = error;
        if (!refusedByZone(error.code) || subnet === undefined) break;
        exhausted.add(subnet);
      }
    }
    if (started.length === 0 && refusal) throw refusal;
    return started;
  }

  async stop(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.client.send(new StopInstancesCommand({ InstanceIds: ids }));
  }

  async terminate(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.client.send(new TerminateInstancesCommand({ InstanceIds: ids }));
  }
}
