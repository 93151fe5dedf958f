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

export interface Ec2FleetOptions {
  /** The value of every instance's Deployment tag (the resource prefix). */
  deployment: string;
  launchTemplateName: string;
  /** Overrides the launch template's image. */
  imageId?: string;
  /** DescribeInstances page size (EC2 allows 5..1000). */
  pageSize?: number;
}

const LIVE_STATES: InstanceState[] = ["pending", "running", "stopping", "stopped", "shutting-down"];

/** EC2's answers when it cannot give an instance now. */
const CAPACITY_CODES = new Set(["VcpuLimitExceeded", "InsufficientInstanceCapacity", "InstanceLimitExceeded"]);

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
  constructor(
    private readonly client: EC2Client,
    private readonly options: Ec2FleetOptions,
  ) {}

  async list(): Promise<AppInstance[]> {
    const instances: AppInstance[] = [];
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
          if (instance.InstanceId && instance.State?.Name) instances.push({ id: instance.InstanceId, state: instance.State.Name as InstanceState });
        }
      }
      token = page.NextToken;
    } while (token);
    return instances;
  }

  async launch(count: number): Promise<string[]> {
    if (count <= 0) return [];
    const tags = [
      { Key: DEPLOYMENT_TAG, Value: this.options.deployment },
      { Key: ROLE_TAG, Value: APP_ROLE_TAG_VALUE },
    ];
    // MinCount 1: EC2 launches as many as its quota and capacity allow, where MinCount = count would launch none.
    const result = await capacityChecked(() =>
      this.client.send(
        new RunInstancesCommand({
          MinCount: 1,
          MaxCount: count,
          LaunchTemplate: { LaunchTemplateName: this.options.launchTemplateName, Version: "$Default" },
          ImageId: this.options.imageId,
          TagSpecifications: [{ ResourceType: "instance", Tags: tags }],
        }),
      ),
    );
    return (result.Instances ?? []).flatMap((instance) => (instance.InstanceId ? [instance.InstanceId] : []));
  }

  /**
   * EC2 starts all of a call's instances or none: when it cannot start them all, they are started one at a time until
   * it refuses one, so the capacity there is gets used.
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
    for (const id of ids) {
      try {
        started.push(...(await startBatch([id])));
      } catch (error) {
        if (error instanceof CapacityError && started.length > 0) break;
        throw error;
      }
    }
    return started;
  }

  async stop(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.client.send(new StopInstancesCommand({ InstanceIds: ids }));
  }

  async terminate(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.client.send(new TerminateInstancesCommand({ InstanceIds: ids }));
  }
}
