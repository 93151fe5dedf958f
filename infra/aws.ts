/**
 * The SDK clients the infra scripts use, with default settings only: region, endpoints and credentials come from
 * the SDK's standard environment (AWS_REGION, AWS_ENDPOINT_URL[_<SERVICE>], the credential chain).
 */
import { EC2Client, type Filter } from "@aws-sdk/client-ec2";
import { IAMClient } from "@aws-sdk/client-iam";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { expectBucketOwner } from "../roles/cloud/aws/bucket-owner.ts";
import { rememberedUntilFailure } from "../roles/cloud/aws/remembered.ts";
import { DEPLOYMENT_TAG } from "../roles/deployment.ts";
import type { Tags } from "./plan.ts";

export interface AwsClients {
  s3: S3Client;
  sqs: SQSClient;
  ec2: EC2Client;
  iam: IAMClient;
  region: string;
}

async function stsAccount(): Promise<string> {
  const sts = new STSClient({});
  try {
    const { Account } = await sts.send(new GetCallerIdentityCommand({}));
    if (!Account) throw new Error("STS GetCallerIdentity named no account");
    return Account;
  } finally {
    sts.destroy();
  }
}

/**
 * The account the credentials belong to (STS), asked once: every S3 call expects the bucket to be its. A failed
 * lookup (STS throttled, the network down for a moment) is asked again by the next call, not kept for good.
 */
export function callerAccount(lookup: () => Promise<string> = stsAccount): () => Promise<string> {
  return rememberedUntilFailure(lookup);
}

export async function awsClients(): Promise<AwsClients> {
  const ec2 = new EC2Client({});
  const s3 = new S3Client({});
  expectBucketOwner(s3, callerAccount());
  return { s3, sqs: new SQSClient({}), ec2, iam: new IAMClient({}), region: await ec2.config.region() };
}

export function destroyClients(clients: AwsClients): void {
  for (const client of [clients.s3, clients.sqs, clients.ec2, clients.iam]) client.destroy();
}

/** True when the SDK error is one of the named AWS error codes. */
export function isAwsError(error: unknown, ...codes: string[]): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { name, Code } = error as { name?: string; Code?: string };
  return codes.includes(name ?? "") || codes.includes(Code ?? "");
}

/** What EC2 answers for an id it does not know, which includes one it created a moment ago. */
export const INSTANCE_NOT_FOUND = "InvalidInstanceID.NotFound";
export const IMAGE_NOT_FOUND = "InvalidAMIID.NotFound";
/** SQS's answers for a queue that does not exist (the SDK names it either way). */
export const NO_SUCH_QUEUE = ["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"];

/** Runs the call; the named errors ("does not exist", "not yet") become undefined. */
export async function unlessMissing<T>(read: () => Promise<T>, ...codes: string[]): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    if (isAwsError(error, ...codes)) return undefined;
    throw error;
  }
}

/** A security group EC2 created a moment ago and does not know yet. */
export const groupNotYetKnown = (error: unknown) => isAwsError(error, "InvalidGroup.NotFound");
/** An instance profile IAM created a moment ago that EC2 cannot use yet: "Invalid IAM Instance Profile name". */
export const profileNotYetUsable = (error: unknown) => isAwsError(error, "InvalidParameterValue") && /IAM Instance Profile/i.test((error as Error).message);

/** What AWS takes to make a new group or instance profile usable: seconds, rarely a minute. */
const CONSISTENCY_TIMEOUT_SECONDS = 90;
const MAX_CONSISTENCY_PAUSE_SECONDS = 10;

/**
 * AWS is eventually consistent after a create: the call is repeated while it fails with `notYet`, pausing twice as
 * long each time (from `pollSeconds`, at most 10 s), for up to 90 s; then its last error is thrown.
 */
export async function onceConsistent<T>(call: () => Promise<T>, notYet: (error: unknown) => boolean, pollSeconds: number): Promise<T> {
  const deadline = Date.now() + CONSISTENCY_TIMEOUT_SECONDS * 1000;
  for (let pause = pollSeconds; ; pause = Math.min(pause * 2, MAX_CONSISTENCY_PAUSE_SECONDS)) {
    try {
      return await call();
    } catch (error) {
      if (!notYet(error) || Date.now() + pause * 1000 > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, pause * 1000));
  }
}

/** Key and Value both present: the shape every service's Tag type accepts. */
export const toTagList = (tags: Tags): { Key: string; Value: string }[] => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

export const fromTagList = (tags: { Key?: string; Value?: string }[] | undefined): Tags =>
  Object.fromEntries((tags ?? []).filter((tag) => tag.Key !== undefined).map((tag) => [tag.Key!, tag.Value ?? ""]));

export const deploymentFilter = (prefix: string): Filter => ({ Name: `tag:${DEPLOYMENT_TAG}`, Values: [prefix] });
