/** The deployment's EC2 instances, found by their Deployment tag. */
import { DescribeInstancesCommand, paginateDescribeInstances, type Instance } from "@aws-sdk/client-ec2";
import { ROLE_TAG } from "../roles/deployment.ts";
import { isBootFailure } from "../roles/controller/capacity.ts";
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

/** The instances, or undefined while EC2 does not know them all: just after RunInstances it may not (eventual consistency). */
async function describeAll(aws: AwsClients, ids: string[]): Promise<Instance[] | undefined> {
  const described = await unlessMissing(() => aws.ec2.send(new DescribeInstancesCommand({ InstanceIds: ids })), INSTANCE_NOT_FOUND);
  const found = (described?.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? []);
  return found.length === ids.length ? found : undefined;
}

/** Waits until every instance is in one of `states`. */
export async function waitForStates(aws: AwsClients, ids: string[], states: string[], options: { timeoutSeconds: number; pollSeconds: number }): Promise<void> {
  if (ids.length === 0) return;
  await waitUntil(
    `${ids.join(", ")} to be ${states.join(" or ")}`,
    async () => {
      const found = await describeAll(aws, ids);
      return found?.every((instance) => states.includes(instance.State?.Name ?? "")) ? true : undefined;
    },
    options,
  );
}

/** An instance EC2 took to launch or start that went down instead of running, with EC2's StateReason. */
export interface FailedBoot {
  id: string;
  state: string;
  reason?: { code?: string; message?: string };
}

/**
 * Waits until each instance runs or no longer can: shutting down or terminated (whatever the reason), or stopped again
 * by a fault (StateReason; right after a start EC2 may still list the stopped instance with the reason of its last,
 * chosen stop, which is waited out). An instance that terminates as it boots fails here within its boot, not at the timeout.
 */
export async function waitForBoots(aws: AwsClients, ids: string[], options: { timeoutSeconds: number; pollSeconds: number }): Promise<{ running: string[]; failed: FailedBoot[] }> {
  if (ids.length === 0) return { running: [], failed: [] };
  return waitUntil(
    `${ids.join(", ")} to run`,
    async () => {
      const found = await describeAll(aws, ids);
      if (!found) return undefined;
      const running: string[] = [];
      const failed: FailedBoot[] = [];
      for (const instance of found) {
        const state = instance.State?.Name ?? "";
        const reason = instance.StateReason;
        if (state === "running") running.push(instance.InstanceId!);
        else if (state === "shutting-down" || state === "terminated" || ((state === "stopping" || state === "stopped") && isBootFailure(reason?.Code))) {
          failed.push({ id: instance.InstanceId!, state, ...(reason && { reason: { code: reason.Code, message: reason.Message } }) });
        } else return undefined;
      }
      return { running, failed };
    },
    options,
  );
}
