/**
 * `bun run infra/bootstrap.ts --ingress-cidr CIDR [--dry-run] [--app-instance-type TYPE] [--state-file PATH]`
 * Creates or repairs a deployment's buckets, admin token, queues, security group, instance roles and launch template,
 * so that a second run changes nothing. Writes what exists to the state file for the other scripts.
 * The admin token: FACEFLEET_API_TOKEN when set (a different stored token is replaced: that is rotation), else the
 * stored one, else a new one printed once.
 */
import { readActualState } from "./actual-state.ts";
import { applyChanges } from "./apply.ts";
import { awsClients, destroyClients } from "./aws.ts";
import { resolveNetwork } from "./network.ts";
import { describeChange, desiredState, planChanges, type ActualState, type DesiredState } from "./plan.ts";
import { INSTANCE_ROLES } from "./policies.ts";
import { runScript, UsageError, waitUntil } from "./script.ts";
import { stateFilePath, writeState } from "./state.ts";

const CONVERGE_SECONDS = 60;

const presentOnly = (entries: [string, string | undefined][]): Record<string, string> =>
  Object.fromEntries(entries.filter((entry): entry is [string, string] => entry[1] !== undefined));

const INGRESS_CIDR_MISSING =
  "--ingress-cidr is required: the addresses that may reach the web tier on port 8000, e.g. --ingress-cidr 203.0.113.7/32 " +
  "for your own address (curl -s https://checkip.amazonaws.com); --ingress-cidr 0.0.0.0/0 opens it to the whole internet";

function stateOf(desired: DesiredState, actual: ActualState) {
  const { names } = desired;
  const url = (name: string) => actual.queues[name]?.url;
  return {
    prefix: desired.prefix,
    region: desired.region,
    buckets: { in: names.inBucket, out: names.outBucket, gallery: names.galleryBucket },
    queueUrls: presentOnly(Object.entries({ request: url(names.reqQueue), response: url(names.respQueue), deadLetter: url(names.deadLetterQueue) })),
    vpcId: desired.network?.vpcId,
    subnetIds: desired.network?.subnetIds,
    securityGroupId: actual.securityGroup?.id,
    roleArns: presentOnly(INSTANCE_ROLES.map((role) => [role, actual.roles[desired.roles[role].name]?.arn])),
    instanceProfileArns: presentOnly(INSTANCE_ROLES.map((role) => [role, actual.instanceProfiles[desired.roles[role].profileName]?.arn])),
    launchTemplateId: actual.launchTemplate?.id,
    launchTemplateName: desired.launchTemplate.name,
  };
}

await runScript("bootstrap", async ({ config, options, out }) => {
  const { ingressCidr } = options;
  if (ingressCidr === undefined) throw new UsageError(INGRESS_CIDR_MISSING);
  const aws = await awsClients();
  try {
    const network = await out.step("find the VPC and subnets", () => resolveNetwork(aws, { vpcId: options.vpcId, subnetIds: options.subnetIds?.split(",") }));
    out.line(`VPC ${network.vpcId}${network.subnetIds.length > 0 ? `, subnets ${network.subnetIds.join(", ")}` : " (default subnets)"}`);
    const desired = desiredState(config, { ...options, region: aws.region, ingressCidr, apiToken: config.apiToken, network });
    const actual = await out.step(`read deployment '${desired.prefix}' in ${aws.region}`, () => readActualState(aws, desired));
    const changes = planChanges(desired, actual);
    if (changes.length === 0) {
      out.line(`no changes: deployment '${desired.prefix}' is up to date`);
    } else if (options.dryRun) {
      out.line(`plan (${changes.length} changes, none made):`);
      for (const change of changes) out.line(`  would ${describeChange(change)}`);
      return;
    } else {
      out.line(`applying ${changes.length} changes:`);
      const applied = await applyChanges(aws, desired, actual, changes, out, { pollSeconds: options.pollSeconds, apiToken: config.apiToken });
      if (applied.createdApiToken) {
        out.line(`admin token (shown this once; the web role reads it from s3://${desired.apiToken.bucket}/${desired.apiToken.key}):`);
        out.line(`  export FACEFLEET_API_TOKEN=${applied.createdApiToken}`);
      }
    }
    // IAM and S3 settings are eventually consistent on AWS: read back until the plan is empty.
    let left = changes;
    const after =
      changes.length === 0
        ? actual
        : await out.step("read back until nothing is left to do", () =>
            waitUntil(
              "the deployment to converge",
              async () => {
                const state = await readActualState(aws, desired);
                left = planChanges(desired, state);
                return left.length === 0 ? state : undefined;
              },
              { timeoutSeconds: CONVERGE_SECONDS, pollSeconds: Math.min(options.pollSeconds, 2) },
            ).catch((error: Error) => {
              throw new Error(`${error.message}; still to do: ${left.map(describeChange).join("; ")}`);
            }),
          );
    const path = stateFilePath(desired.prefix, options.stateFile);
    writeState(path, stateOf(desired, after));
    out.line(`state written to ${path}`);
  } finally {
    destroyClients(aws);
  }
});
