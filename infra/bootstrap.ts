/**
 * `bun run infra/bootstrap.ts [--dry-run] [--ingress-cidr CIDR] [--app-instance-type TYPE] [--state-file PATH]`
 * Creates or repairs a deployment's buckets, queues, security group, instance role and launch template, so that
 * a second run changes nothing. Writes what exists to the state file for the other scripts.
 */
import { readActualState } from "./actual-state.ts";
import { applyChanges } from "./apply.ts";
import { awsClients, destroyClients } from "./aws.ts";
import { describeChange, desiredState, planChanges, type ActualState, type DesiredState } from "./plan.ts";
import { runScript, waitUntil } from "./script.ts";
import { stateFilePath, writeState } from "./state.ts";

const CONVERGE_SECONDS = 60;

function stateOf(desired: DesiredState, actual: ActualState) {
  const { names } = desired;
  const url = (name: string) => actual.queues[name]?.url;
  return {
    prefix: desired.prefix,
    region: desired.region,
    buckets: { in: names.inBucket, out: names.outBucket, gallery: names.galleryBucket },
    queueUrls: Object.fromEntries(
      Object.entries({ request: url(names.reqQueue), response: url(names.respQueue), deadLetter: url(names.deadLetterQueue) }).filter(
        (entry): entry is [string, string] => entry[1] !== undefined,
      ),
    ),
    securityGroupId: actual.securityGroup?.id,
    roleArn: actual.role?.arn,
    instanceProfileArn: actual.instanceProfile?.arn,
    launchTemplateId: actual.launchTemplate?.id,
    launchTemplateName: desired.launchTemplate.name,
  };
}

await runScript("bootstrap", async ({ config, options, out }) => {
  const aws = await awsClients();
  try {
    const desired = desiredState(config, { region: aws.region, ...options });
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
      await applyChanges(aws, desired, actual, changes, out, options.pollSeconds);
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
