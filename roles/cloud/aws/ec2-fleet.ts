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
import type { AppInstance, Fleet, InstanceState } from "../types.ts";


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
    const result = await this.client.send(
      new RunInstancesCommand({
        MinCount: count,
        MaxCount: count,
        LaunchTemplate: { LaunchTemplateName: this.options.launchTemplateName, Version: "$Default" },
        ImageId: this.options.imageId,
        TagSpecifications: [{ ResourceType: "instance", Tags: tags }],
      }),
    );
    return (result.Instances ?? []).flatMap((instance) => (instance.InstanceId ? [instance.InstanceId] : []));
  }

  async start(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.client.send(new StartInstancesCommand({ InstanceIds: ids }));
  }

  async stop(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.client.send(new StopInstancesCommand({ InstanceIds: ids }));
  }

  async terminate(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.client.send(new TerminateInstancesCommand({ InstanceIds: ids }));
  }
}
