/**
 * `bun run infra/launch.ts [--pool warm|cold] [--pool-size N] [--colocate-controller true|false] [--web-instance-type TYPE] [--dry-run]`
 * Boots the web tier (Role=web+controller, or Role=web and Role=controller apart) from the baked image, and the
 * app pool: N app instances launched and stopped again (warm: scale-out is a StartInstances) or none (cold:
 * scale-out is a RunInstances). Only what is missing is launched; a second run changes nothing.
 */
import { DescribeInstancesCommand, RunInstancesCommand, StartInstancesCommand, StopInstancesCommand, type _InstanceType } from "@aws-sdk/client-ec2";
import { awsClients, destroyClients, isAwsError, onceConsistent, profileNotYetUsable, toTagList, type AwsClients } from "./aws.ts";
import { ROLE_TAG } from "../roles/deployment.ts";
import { listDeploymentInstances, waitForBoots, waitForStates, type FailedBoot } from "./instances.ts";
import { instanceRoleNames } from "./policies.ts";
import { aliveInstances, describeLaunchAction, planLaunch, type LaunchAction } from "./launch-plan.ts";
import { DEPLOYMENT_TAG } from "../roles/deployment.ts";
import { runScript, sleep, type ScriptContext } from "./script.ts";
import { appNetworkOf, requireState, stateFilePath, writeState } from "./state.ts";
import type { Config } from "../roles/config.ts";
import { refusedByZone, spreadOverSubnets, ZONE_REFUSAL_CODES } from "../roles/cloud/aws/zone-spread.ts";
import { bootFailureAdvice } from "../roles/controller/capacity.ts";

/** EC2's answers when it cannot give an instance now (the account's vCPU quota, a zone out of machines or without the type). */
const CAPACITY_ERRORS = ["VcpuLimitExceeded", "InstanceLimitExceeded", ...ZONE_REFUSAL_CODES];
/** Refusals in a row before launch gives up (each waits twice as long as the one before, from 2 poll intervals). */
const MAX_REFUSALS = 3;

/**
 * Instances EC2 took to launch or start that went down as they booted (a KMS key these credentials may not use, a
 * volume quota): retrying cannot help until the cause is fixed, so launch ends, naming each with EC2's reason.
 */
function bootFailures(what: string, failed: FailedBoot[]): Error {
  const each = failed.map(({ id, state, reason }) => `${id} ${state}${reason ? ` (${reason.message ?? reason.code})` : ""}`);
  const code = failed.find((instance) => instance.reason?.code && bootFailureAdvice(instance.reason.code))?.reason?.code;
  const advice = code && bootFailureAdvice(code, "the credentials that run launch need kms:CreateGrant on it through EC2, from the key's policy or their IAM policy");
  return new Error(`EC2 took the ${what}, but these went down as they booted: ${each.join(", ")}${advice ? `; ${advice}` : ""}. Launch again fills what is missing`);
}

async function carryOut(aws: AwsClients, action: LaunchAction, launchTemplateId: string, network: Config["appNetwork"], context: ScriptContext): Promise<string[]> {
  const { options } = context;
  const wait = { timeoutSeconds: 600, pollSeconds: options.pollSeconds };
  if (action.kind === "start") {
    // EC2 refuses to start an instance that is still stopping.
    await waitForStates(aws, action.ids, ["stopped"], wait);
    await aws.ec2.send(new StartInstancesCommand({ InstanceIds: action.ids }));
    return action.ids;
  }
  // App instances are spread over the subnets, as the controller spreads them; the web tier is in the template's.
  return launchInRounds(aws, action, launchTemplateId, action.role === "app" ? network : undefined, context);
}

/**
 * MinCount 1: EC2 gives what its quota and capacity allow (MinCount = n gives nothing when it cannot give n). A warm
 * pool is launched in rounds: each round's instances are stopped, which frees their vCPUs, before the next round asks
 * for the rest. Over several subnets, each round gives each its share and leaves out a zone out of machines. A
 * refusal of every subnet is waited out with backoff a few times, then named with what to do about it.
 */
async function launchInRounds(
  aws: AwsClients,
  action: Extract<LaunchAction, { kind: "launch" }>,
  launchTemplateId: string,
  network: Config["appNetwork"],
  context: ScriptContext,
): Promise<string[]> {
  const { config, options, out } = context;
  const wait = { timeoutSeconds: 600, pollSeconds: options.pollSeconds };
  const launched: string[] = [];
  const holding = new Map<string, number>();
  let usable = network?.subnetIds ?? [];
  const run = async (count: number, subnetId: string | undefined): Promise<string[]> => {
    const command = new RunInstancesCommand({
      MinCount: 1,
      MaxCount: count,
      LaunchTemplate: { LaunchTemplateId: launchTemplateId, Version: "$Default" },
      // The template carries the app profile; the web tier gets its own role.
      ...(action.role !== "app" && { InstanceType: options.webInstanceType as _InstanceType, IamInstanceProfile: { Name: instanceRoleNames(config.prefix).web.profileName } }),
      ...(subnetId && network && { NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: subnetId, Groups: [network.securityGroupId] }] }),
      TagSpecifications: [
        {
          ResourceType: "instance",
          Tags: toTagList({ [DEPLOYMENT_TAG]: config.prefix, [ROLE_TAG]: action.role, Name: `${config.prefix}-${action.role.replace("+", "-")}` }),
        },
      ],
    });
    // The launch template's instance profile may be a few seconds old (launch right after bootstrap).
    const { Instances } = await onceConsistent(() => aws.ec2.send(command), profileNotYetUsable, options.pollSeconds);
    return (Instances ?? []).flatMap((instance) => (instance.InstanceId ? [instance.InstanceId] : []));
  };
  for (let refusals = 0; launched.length < action.count; ) {
    const wanted = action.count - launched.length;
    const shares: [string | undefined, number][] = usable.length > 0 ? [...spreadOverSubnets(holding, usable, wanted)] : [[undefined, wanted]];
    const ids: string[] = [];
    let refusal: Error | undefined;
    for (const [subnetId, count] of shares) {
      try {
        const got = await run(count, subnetId);
        ids.push(...got);
        if (subnetId) holding.set(subnetId, (holding.get(subnetId) ?? 0) + got.length);
      } catch (error) {
        if (!isAwsError(error, ...CAPACITY_ERRORS)) throw error;
        refusal = error as Error;
        if (subnetId && usable.length > 1 && refusedByZone(refusal.name)) {
          usable = usable.filter((other) => other !== subnetId);
          out.line(`  ${subnetId}'s zone gives no more ${action.role} instances (${refusal.name}); the other subnets take its share`);
        }
      }
    }
    if (ids.length === 0 && refusal) {
      refusals += 1;
      if (refusals > MAX_REFUSALS) {
        const remedy = isAwsError(refusal, "Unsupported")
          ? "Run bootstrap with --subnet-ids in zones that offer the type, or another --app-instance-type"
          : `Raise the account's "Running On-Demand Standard instances" vCPU quota (Service Quotas) or launch fewer (--pool-size)`;
        throw new Error(`EC2 gave ${launched.length} of ${action.count} ${action.role} instance(s) and refuses more (${refusal.name}: ${refusal.message}). ${remedy}; launch again fills what is missing`);
      }
      const pauseSeconds = 2 * options.pollSeconds * 2 ** (refusals - 1);
      out.line(`  EC2 refused ${wanted} more ${action.role} instance(s) (${refusal.name}); trying again in ${pauseSeconds} s`);
      await sleep(pauseSeconds * 1000);
      continue;
    }
    refusals = 0;
    launched.push(...ids);
    if (ids.length < wanted) out.line(`  EC2 gave ${ids.length} of ${wanted} ${action.role} instance(s) (quota or capacity); the rest in another round`);
    if (action.thenStop) {
      const { running, failed } = await waitForBoots(aws, ids, wait);
      // Those that run are stopped all the same: the pool holds them, and a second launch counts them.
      if (running.length > 0) await aws.ec2.send(new StopInstancesCommand({ InstanceIds: running }));
      if (failed.length > 0) throw bootFailures(`launch of ${ids.length} ${action.role} instance(s)`, failed);
      if (launched.length < action.count) await waitForStates(aws, ids, ["stopped"], wait);
    }
  }
  return launched;
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
      launched[action.role] = await out.step(describeLaunchAction(action), () => carryOut(aws, action, launchTemplateId, appNetworkOf(state), context));
    }
    const serviceIds = Object.entries(launched).flatMap(([role, ids]) => (role === "app" ? [] : ids));
    await out.step("wait for the web tier to run", async () => {
      const { failed } = await waitForBoots(aws, serviceIds, { timeoutSeconds: 600, pollSeconds: options.pollSeconds });
      if (failed.length > 0) throw bootFailures("web tier's launch or start", failed);
    });
    const all = await listDeploymentInstances(aws, config.prefix);
    const instances: Record<string, string[]> = {};
    for (const instance of aliveInstances(all)) (instances[instance.role] ??= []).push(instance.id);
    writeState(path, { prefix: config.prefix, region: aws.region, instances });
    for (const [role, ids] of Object.entries(instances)) out.line(`${role}: ${ids.length} (${ids.join(", ")})`);
    await printAddresses(aws, config.prefix, out);
  } finally {
    destroyClients(aws);
  }
});
