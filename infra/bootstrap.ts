/**
 * `bun run infra/bootstrap.ts --ingress-cidr CIDR [--dry-run] [--app-instance-type TYPE] [--state-file PATH]`
 * Creates or repairs a deployment's buckets, admin token, queues, security group, instance roles and launch template,
 * so that a second run changes nothing. Writes what exists to the state file for the other scripts.
 * The admin token: FACEFLEET_API_TOKEN when set (a different stored token is replaced: that is rotation), else the
 * stored one, else a new one printed once.
 */
import { readActualState } from "./actual-state.ts";
import { applyChanges, knownResources, type KnownResources } from "./apply.ts";
import { awsClients, destroyClients, type AwsClients } from "./aws.ts";
import { ebsDefaultCustomerKey } from "./ebs-encryption.ts";
import { resolveNetwork } from "./network.ts";
import { describeChange, desiredState, planChanges, type Change, type DesiredState } from "./plan.ts";
import { INSTANCE_ROLES } from "./policies.ts";
import { runScript, UsageError, waitUntil, type InfraOptions, type Output } from "./script.ts";
import { stateFilePath, writeState } from "./state.ts";

/** How often the wait for read-back says what it still waits for. */
const PROGRESS_EVERY_SECONDS = 30;

const presentOnly = (entries: [string, string | undefined][]): Record<string, string> =>
  Object.fromEntries(entries.filter((entry): entry is [string, string] => entry[1] !== undefined));

const INGRESS_CIDR_MISSING =
  "--ingress-cidr is required: the addresses that may reach the web tier on port 8000, e.g. --ingress-cidr 203.0.113.7/32 " +
  "for your own address (curl -s https://checkip.amazonaws.com); --ingress-cidr 0.0.0.0/0 opens it to the whole internet";

function stateOf(desired: DesiredState, known: KnownResources) {
  const { names } = desired;
  const url = (name: string) => known.queueUrls.get(name);
  return {
    prefix: desired.prefix,
    region: desired.region,
    buckets: { in: names.inBucket, out: names.outBucket, gallery: names.galleryBucket },
    queueUrls: presentOnly(Object.entries({ request: url(names.reqQueue), response: url(names.respQueue), deadLetter: url(names.deadLetterQueue) })),
    vpcId: desired.network?.vpcId,
    subnetIds: desired.network?.subnetIds,
    securityGroupId: known.securityGroupId,
    roleArns: presentOnly(INSTANCE_ROLES.map((role) => [role, known.roleArns.get(desired.roles[role].name)])),
    instanceProfileArns: presentOnly(INSTANCE_ROLES.map((role) => [role, known.instanceProfileArns.get(desired.roles[role].profileName)])),
    launchTemplateId: known.launchTemplateId,
    launchTemplateName: desired.launchTemplate.name,
  };
}

/**
 * IAM, S3 and SQS settings are eventually consistent on AWS (SetQueueAttributes up to 60 s, MessageRetentionPeriod up
 * to 15 minutes, a lifecycle configuration a few minutes, IAM several minutes): reads back until the plan is empty,
 * saying what it still waits for. Answers what is left when it gives up.
 */
async function readBack(aws: AwsClients, desired: DesiredState, out: Output, options: InfraOptions): Promise<Change[]> {
  const started = Date.now();
  let left: Change[] = [];
  let said = "";
  let saidAt = started;
  let readFailed = false;
  try {
    await waitUntil(
      "the deployment to read back as applied",
      async () => {
        const actual = await readActualState(aws, desired).catch((error: unknown) => {
          readFailed = true;
          throw error;
        });
        left = planChanges(desired, actual);
        const now = left.map(describeChange).join("; ");
        if (left.length > 0 && (now !== said || Date.now() - saidAt >= PROGRESS_EVERY_SECONDS * 1000)) {
          out.line(`  ... ${Math.round((Date.now() - started) / 1000)} s: AWS does not read back yet (it propagates for up to ${options.convergeSeconds} s): ${now}`);
          [said, saidAt] = [now, Date.now()];
        }
        return left.length === 0 ? true : undefined;
      },
      { timeoutSeconds: options.convergeSeconds, pollSeconds: Math.min(options.pollSeconds, 2) },
    );
  } catch (error) {
    // Only the wait running out is an answer; a read that fails is the script's failure.
    if (readFailed || left.length === 0) throw error;
  }
  return left;
}

await runScript("bootstrap", async ({ config, options, out }) => {
  const { ingressCidr } = options;
  if (ingressCidr === undefined) throw new UsageError(INGRESS_CIDR_MISSING);
  const aws = await awsClients();
  try {
    const network = await out.step("find the VPC and subnets", () => resolveNetwork(aws, { vpcId: options.vpcId, subnetIds: options.subnetIds?.split(",") }));
    out.line(`VPC ${network.vpcId}${network.subnetIds.length > 0 ? `, subnets ${network.subnetIds.join(", ")}` : " (default subnets)"}`);
    const ebsKmsKeyArn = await out.step("read the account's EBS encryption by default", () => ebsDefaultCustomerKey(aws));
    if (ebsKmsKeyArn) out.line(`new volumes are encrypted with the customer managed key ${ebsKmsKeyArn}: the web role may let EC2 use it (kms:CreateGrant)`);
    const desired = desiredState(config, { ...options, region: aws.region, ingressCidr, apiToken: config.apiToken, network, ebsKmsKeyArn });
    const actual = await out.step(`read deployment '${desired.prefix}' in ${aws.region}`, () => readActualState(aws, desired));
    const changes = planChanges(desired, actual);
    const path = stateFilePath(desired.prefix, options.stateFile);
    if (changes.length === 0) {
      out.line(`no changes: deployment '${desired.prefix}' is up to date`);
      writeState(path, { ...stateOf(desired, knownResources(actual)), readBackPending: undefined });
      out.line(`state written to ${path}`);
      return;
    }
    if (options.dryRun) {
      out.line(`plan (${changes.length} changes, none made):`);
      for (const change of changes) out.line(`  would ${describeChange(change)}`);
      return;
    }
    out.line(`applying ${changes.length} changes:`);
    const known = knownResources(actual);
    // Whatever happens, what exists is recorded, with what is yet to be read back as applied.
    const recordState = () => writeState(path, { ...stateOf(desired, known), readBackPending: changes.map(describeChange) });
    const applied = await applyChanges(aws, desired, actual, changes, out, { pollSeconds: options.pollSeconds, apiToken: config.apiToken }, known).catch((error: Error) => {
      recordState();
      throw new Error(`${error.message} (what exists is recorded in ${path}; bootstrap again carries on)`);
    });
    if (applied.createdApiToken) {
      out.line(`admin token (shown this once; the web role reads it from s3://${desired.apiToken.bucket}/${desired.apiToken.key}):`);
      out.line(`  export FACEFLEET_API_TOKEN=${applied.createdApiToken}`);
    }
    // Written before the wait: whatever AWS takes to show the changes, the deployment's resources exist and are recorded.
    recordState();
    out.line(`state written to ${path}`);
    const left = await out.step("read back until nothing is left to do", () => readBack(aws, desired, out, options));
    writeState(path, { prefix: desired.prefix, region: desired.region, readBackPending: left.length > 0 ? left.map(describeChange) : undefined });
    if (left.length > 0) {
      throw new Error(
        `after ${options.convergeSeconds} s AWS still does not read back: ${left.map(describeChange).join("; ")}. ` +
          `Everything was applied and ${path} is written (it notes this); run bootstrap again to check`,
      );
    }
    out.line("everything reads back as applied");
  } finally {
    destroyClients(aws);
  }
});
