/** The deployment's app instances on EC2: found by their Deployment and Role tags. */
import {
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import type { AppInstance, Fleet, InstanceState } from "../types.ts";

export const DEPLOYMENT_TAG = "Deployment";
export const APP_ROLE = "app";

export class Ec2Fleet implements Fleet {
  constructor(
    private readonly client: EC2Client,
    private readonly deployment: string,
    private readonly launchTemplateName: string,
    private readonly imageId?: string,
  ) {}

  async list(): Promise<AppInstance[]> {
    const instances: AppInstance[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: `tag:${DEPLOYMENT_TAG}`, Values: [this.deployment] },
            { Name: "tag:Role", Values: [APP_ROLE] },
            { Name: "instance-state-name", Values: ["pending", "running", "stopping", "stopped", "shutting-down"] },
          ],
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
      { Key: DEPLOYMENT_TAG, Value: this.deployment },
      { Key: "Role", Value: APP_ROLE },
    ];
    const result = await this.client.send(
      new RunInstancesCommand({
        MinCount: count,
        MaxCount: count,
        LaunchTemplate: { LaunchTemplateName: this.launchTemplateName, Version: "$Default" },
        ImageId: this.imageId,
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
