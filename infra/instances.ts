/** The deployment's EC2 instances, found by their Deployment tag. */
import { DescribeInstancesCommand, paginateDescribeInstances } from "@aws-sdk/client-ec2";
import { ROLE_TAG } from "../roles/deployment.ts";
import { deploymentFilter, fromTagList, INSTANCE_NOT_FOUND, unlessMissing, type AwsClients } from "./aws.ts";
import type { ExistingInstance } from "./launch-plan.ts";
import { waitUntil } from "./script.ts";


export async function listDeploymentInstances(aws: AwsClients, prefix: string): Promise<ExistingInstance[]> {
  const instances: ExistingInstance[] = [];
  for await (const page of paginateDescribeInstances({ client: aws.ec2 }, { Filters: [deploymentFilter(prefix)] })) {
    for (const instance of (page.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? [])) {
      if (!instance.InstanceId) continue;
      instances.push({ id: instance.InstanceId, role: fromTagList(instance.Tags)[ROLE_TAG] ?? "", state: instance.State?.Name ?? "unknown" });
    }
  }
  return instances;
}

/** Waits until every instance is in one of `states`. */
export async function waitForStates(aws: AwsClients, ids: string[], states: string[], options: { timeoutSeconds: number; pollSeconds: number }): Promise<void> {
  if (ids.length === 0) return;
  await waitUntil(
    `${ids.join(", ")} to be ${states.join(" or ")}`,
    async () => {
      // Just after RunInstances, EC2 may not know the new ids yet (eventual consistency): keep waiting.
      const described = await unlessMissing(() => aws.ec2.send(new DescribeInstancesCommand({ InstanceIds: ids })), INSTANCE_NOT_FOUND);
      const found = (described?.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? []);
      return found.length === ids.length && found.every((instance) => states.includes(instance.State?.Name ?? "")) ? true : undefined;
    },
    options,
  );
}
