/**
 * `bun run infra/launch.ts [--pool warm|cold] [--pool-size N] [--colocate-controller true|false] [--web-instance-type TYPE] [--dry-run]`
 * Boots the web tier (Role=web+controller, or Role=web and Role=controller apart) from the baked image, and the
 * app pool: N app instances launched and stopped again (warm: scale-out is a StartInstances) or none (cold:
 * scale-out is a RunInstances). Only what is missing is launched; a second run changes nothing.
 */
import { DescribeInstancesCommand, RunInstancesCommand, StartInstancesCommand, StopInstancesCommand, type _InstanceType } from "@aws-sdk/client-ec2";
import { awsClients, destroyClients, toTagList, type AwsClients } from "./aws.ts";
import { ROLE_TAG } from "../roles/deployment.ts";
import { listDeploymentInstances, waitForStates } from "./instances.ts";
import { instanceRoleNames } from "./policies.ts";
import { describeLaunchAction, planLaunch, type LaunchAction } from "./launch-plan.ts";
import { DEPLOYMENT_TAG } from "../roles/deployment.ts";
import { runScript, type ScriptContext } from "./script.ts";
import { requireState, stateFilePath, writeState } from "./state.ts";

async function carryOut(aws: AwsClients, action: LaunchAction, launchTemplateId: string, context: ScriptContext): Promise<string[]> {
  const { config, options } = context;
  const wait = { timeoutSeconds: 600, pollSeconds: options.pollSeconds };
  if (action.kind === "start") {
    // EC2 refuses to start an instance that is still stopping.
    await waitForStates(aws, action.ids, ["stopped"], wait);
    await aws.ec2.send(new StartInstancesCommand({ InstanceIds: action.ids }));
    return action.ids;
  }
  const { Instances } = await aws.ec2.send(
    new RunInstancesCommand({
      MinCount: action.count,
      MaxCount: action.count,
      LaunchTemplate: { LaunchTemplateId: launchTemplateId, Version: "$Default" },
      // The template carries the app profile; the web tier gets its own role.
      ...(action.role !== "app" && { InstanceType: options.webInstanceType as _InstanceType, IamInstanceProfile: { Name: instanceRoleNames(config.prefix).web.profileName } }),
      TagSpecifications: [
        {
          ResourceType: "instance",
          Tags: toTagList({ [DEPLOYMENT_TAG]: config.prefix, [ROLE_TAG]: action.role, Name: `${config.prefix}-${action.role.replace("+", "-")}` }),
        },
      ],
    }),
  );
  const ids = (Instances ?? []).flatMap((instance) => (instance.InstanceId ? [instance.InstanceId] : []));
  if (ids.length !== action.count) throw new Error(`asked for ${action.count} ${action.role} instances, got ${ids.length}`);
  if (action.thenStop) {
    await waitForStates(aws, ids, ["running"], wait);
    await aws.ec2.send(new StopInstancesCommand({ InstanceIds: ids }));
  }
  return ids;
}

async function printAddresses(aws: AwsClients, prefix: string, out: ScriptContext["out"]): Promise<void> {
  const { Reservations } = await aws.ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${DEPLOYMENT_TAG}`, Values: [prefix] },
        { Name: "instance-state-name", Values: ["pending", "running"] },
      ],
    }),
  );
  for (const instance of (Reservations ?? []).flatMap((reservation) => reservation.Instances ?? [])) {
    const role = instance.Tags?.find((tag) => tag.Key === ROLE_TAG)?.Value ?? "";
    const address = instance.PublicIpAddress ?? instance.PrivateIpAddress;
    if (role.split("+").includes("web") && address) out.line(`web tier: curl -F inputFile=@face.jpg http://${address}:8000/   (${instance.InstanceId})`);
  }
}

await runScript("launch", async (context) => {
  const { config, options, out } = context;
  const path = stateFilePath(config.prefix, options.stateFile);
  const state = requireState(path);
  if (!state.imageId || !state.launchTemplateId) throw new Error("no baked image in the state file: run infra/bake-ami.ts first");
  const launchTemplateId = state.launchTemplateId;
  const aws = await awsClients();
  try {
    const existing = await out.step(`find instances tagged ${DEPLOYMENT_TAG}=${config.prefix}`, () => listDeploymentInstances(aws, config.prefix));
    const actions = planLaunch(existing, { ...options, poolSize: options.poolSize ?? config.maxAppInstances });
    if (actions.length === 0) out.line("no changes: every instance the deployment needs exists");
    if (options.dryRun) {
      for (const action of actions) out.line(`  would ${describeLaunchAction(action)}`);
      return;
    }
    const launched: Record<string, string[]> = {};
    for (const action of actions) {
      launched[action.role] = await out.step(describeLaunchAction(action), () => carryOut(aws, action, launchTemplateId, context));
    }
    const serviceIds = Object.entries(launched).flatMap(([role, ids]) => (role === "app" ? [] : ids));
    await out.step("wait for the web tier to run", () => waitForStates(aws, serviceIds, ["running"], { timeoutSeconds: 600, pollSeconds: options.pollSeconds }));
    const all = await listDeploymentInstances(aws, config.prefix);
    const instances: Record<string, string[]> = {};
    for (const instance of all.filter((candidate) => candidate.state !== "terminated")) (instances[instance.role] ??= []).push(instance.id);
    writeState(path, { prefix: config.prefix, region: aws.region, instances });
    for (const [role, ids] of Object.entries(instances)) out.line(`${role}: ${ids.length} (${ids.join(", ")})`);
    await printAddresses(aws, config.prefix, out);
  } finally {
    destroyClients(aws);
  }
});
