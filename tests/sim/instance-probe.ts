/**
 * A tiny instance program for the emulator tests: it reads its metadata with the SDK's own metadata client (IMDSv2
 * through AWS_EC2_METADATA_SERVICE_ENDPOINT), resolves credentials through the SDK's default chain, calls EC2, writes
 * what it found to PROBE_OUT, then waits for SIGTERM (or exits at once with the code PROBE_EXIT_CODE names).
 */
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { MetadataService } from "@aws-sdk/ec2-metadata-service";

const out = process.env.PROBE_OUT!;
console.log(`probe ${process.pid} up`);
const metadata = new MetadataService({});
const read = (path: string) => metadata.request(path, {}).catch((error: { $metadata?: { httpStatusCode?: number } }) => `status ${error.$metadata?.httpStatusCode}`);

const instanceId = await read("/latest/meta-data/instance-id");
const ec2 = new EC2Client({});
const credentials = await ec2.config.credentials();
const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
await Bun.write(
  out,
  JSON.stringify({
    instanceId,
    role: await read("/latest/meta-data/tags/instance/Role"),
    region: await read("/latest/meta-data/placement/region"),
    accessKeyId: credentials.accessKeyId,
    sessionToken: credentials.sessionToken,
    stateSeenByEc2: described.Reservations?.[0]?.Instances?.[0]?.State?.Name,
  }),
);
if (process.env.PROBE_EXIT_CODE !== undefined) process.exit(Number(process.env.PROBE_EXIT_CODE));
process.on("SIGTERM", () => {
  Bun.write(`${out}.sigterm`, "SIGTERM").then(() => process.exit(0));
});
setInterval(() => {}, 1000);
