/**
 * `bun run infra/watch.ts` — every second, one line: the queues' depths (visible + in flight), the app instances by
 * state, and the objects in the input and output buckets. Ctrl-C ends it.
 */
import { paginateListObjectsV2 } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, GetQueueUrlCommand } from "@aws-sdk/client-sqs";
import { resourceNames } from "../roles/config.ts";
import { awsClients, type AwsClients } from "./aws.ts";
import { listDeploymentInstances } from "./instances.ts";
import { runScript, sleep } from "./script.ts";

async function queueDepth(aws: AwsClients, QueueUrl: string): Promise<string> {
  const { Attributes } = await aws.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }),
  );
  return `${Attributes?.ApproximateNumberOfMessages ?? "?"}+${Attributes?.ApproximateNumberOfMessagesNotVisible ?? "?"}`;
}

async function objectCount(aws: AwsClients, Bucket: string): Promise<number> {
  let count = 0;
  for await (const page of paginateListObjectsV2({ client: aws.s3 }, { Bucket })) count += page.KeyCount ?? 0;
  return count;
}

await runScript("watch", async ({ config, out }) => {
  const aws = await awsClients();
  const names = resourceNames(config);
  const queues = [names.reqQueue, names.respQueue, names.deadLetterQueue];
  const urls = await Promise.all(queues.map(async (QueueName) => (await aws.sqs.send(new GetQueueUrlCommand({ QueueName }))).QueueUrl!));
  out.line("time      request  response  dead-letter  app instances                 in-bucket  out-bucket");
  for (;;) {
    const started = Date.now();
    const [depths, instances, inObjects, outObjects] = await Promise.all([
      Promise.all(urls.map((url) => queueDepth(aws, url))),
      listDeploymentInstances(aws, config.prefix),
      objectCount(aws, names.inBucket),
      objectCount(aws, names.outBucket),
    ]);
    const byState = new Map<string, number>();
    for (const instance of instances.filter((candidate) => candidate.role === "app" && candidate.state !== "terminated")) {
      byState.set(instance.state, (byState.get(instance.state) ?? 0) + 1);
    }
    const fleet = [...byState].map(([state, count]) => `${count} ${state}`).join(", ") || "none";
    const [request, response, deadLetter] = depths as [string, string, string];
    out.line(
      `${new Date().toISOString().slice(11, 19)}  ${request.padEnd(7)}  ${response.padEnd(8)}  ${deadLetter.padEnd(11)}  ${fleet.padEnd(28)}  ${String(inObjects).padEnd(9)}  ${outObjects}`,
    );
    await sleep(Math.max(0, 1000 - (Date.now() - started)));
  }
});
