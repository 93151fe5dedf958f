/**
 * Which roles this process plays: --role or FACEFLEET_ROLE first, else the EC2 instance's `Role` tag read
 * through instance metadata (IMDSv2; DescribeTags when metadata tags are off), else all of them (embedded).
 * The SDK's modules are loaded only when metadata is asked (the EC2 client only for DescribeTags): they are a good
 * part of a process's start-up.
 */
import type { MetadataService } from "@aws-sdk/ec2-metadata-service";
import { Value } from "@sinclair/typebox/value";
import { RoleSchema, type Role } from "./config.ts";
import { ROLE_TAG } from "./deployment.ts";

/** Off EC2 nothing answers at the metadata address: this soon, the process runs every role embedded. */
const METADATA_TIMEOUT_MS = 300;
const REQUIRED_METADATA_ATTEMPT_TIMEOUT_MS = 1000;
const REQUIRED_METADATA_WAIT_MS = 30_000;
const METADATA_RETRY_PAUSE_MS = 250;

export interface MetadataPolicy {
  /**
   * The process runs on EC2 (the baked image says so): a metadata service slow to answer is waited for, and one that
   * never answers is an error (systemd restarts the process), never the embedded mode.
   */
  required: boolean;
  /** How long a required metadata service may take to answer (default 30 s). */
  waitMs?: number;
}

export interface RoleResolution {
  roles: Role[];
  source: "argument" | "configuration" | "instance-metadata-tag" | "describe-tags" | "no-instance-metadata" | "instance-metadata-disabled";
  instanceId?: string;
}

export class RoleError extends Error {
  override name = "RoleError";
}

/** "web", "app", "controller", "all", or several joined by "," or "+", e.g. "web+controller". */
export function parseRoles(value: string): Role[] {
  const roles = value
    .split(/[,+]/)
    .map((role) => role.trim().toLowerCase())
    .filter(Boolean);
  if (roles.length === 0) throw new RoleError(`empty role '${value}'`);
  for (const role of roles) {
    if (!Value.Check(RoleSchema, role)) throw new RoleError(`unknown role '${role}' (expected web, app, controller or all)`);
  }
  return [...new Set(roles as Role[])];
}

function roleArgument(argv: string[]): string | undefined {
  const index = argv.findIndex((arg) => arg === "--role" || arg.startsWith("--role="));
  if (index < 0) return undefined;
  const arg = argv[index]!;
  return arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[index + 1];
}

/** The instance metadata service once it has handed out a token; undefined when it is optional and did not answer. */
async function reachMetadataService({ required, waitMs = REQUIRED_METADATA_WAIT_MS }: MetadataPolicy): Promise<MetadataService | undefined> {
  const timeout = required ? REQUIRED_METADATA_ATTEMPT_TIMEOUT_MS : METADATA_TIMEOUT_MS;
  const { MetadataService } = await import("@aws-sdk/ec2-metadata-service");
  const metadata = new MetadataService({ httpOptions: { timeout }, retries: 0, ec2MetadataV1Disabled: true });
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await metadata.fetchMetadataToken();
      return metadata;
    } catch {
      if (!required) return undefined;
      if (Date.now() >= deadline) {
        throw new RoleError(`no instance metadata service answered in ${waitMs / 1000} s; this process is set to run on EC2 (instanceMetadata: required), where its role comes from the instance's '${ROLE_TAG}' tag`);
      }
      await Bun.sleep(METADATA_RETRY_PAUSE_MS);
    }
  }
}

/** The SDK's own setting that turns instance metadata off, read as its credential chain reads it: set and not "false". */
function metadataDisabled(env: Record<string, string | undefined>): boolean {
  const value = env.AWS_EC2_METADATA_DISABLED;
  return value !== undefined && value !== "" && value !== "false";
}

/** `configuredRole` is the configuration's `role` (FACEFLEET_ROLE or the configuration file). */
export async function resolveRoles(argv: string[], configuredRole: string | undefined, env: Record<string, string | undefined>, metadataPolicy: MetadataPolicy = { required: false }): Promise<RoleResolution> {
  const fromArgument = roleArgument(argv);
  if (fromArgument !== undefined) return { roles: parseRoles(fromArgument), source: "argument" };
  if (configuredRole) return { roles: parseRoles(configuredRole), source: "configuration" };

  if (metadataDisabled(env)) {
    if (metadataPolicy.required) {
      throw new RoleError(`AWS_EC2_METADATA_DISABLED is set, but this process is set to run on EC2 (instanceMetadata: required), where its role comes from the instance's '${ROLE_TAG}' tag`);
    }
    return { roles: ["all"], source: "instance-metadata-disabled" };
  }
  const metadata = await reachMetadataService(metadataPolicy);
  if (!metadata) return { roles: ["all"], source: "no-instance-metadata" };
  const instanceId = (await metadata.request("/latest/meta-data/instance-id", {})).trim();
  try {
    const tag = await metadata.request(`/latest/meta-data/tags/instance/${ROLE_TAG}`, {});
    return { roles: parseRoles(tag), source: "instance-metadata-tag", instanceId };
  } catch (error) {
    if (error instanceof RoleError) throw error;
  }
  const region = env.AWS_REGION ?? (await metadata.request("/latest/meta-data/placement/region", {})).trim();
  const { DescribeTagsCommand, EC2Client } = await import("@aws-sdk/client-ec2");
  const ec2 = new EC2Client({ region });
  const { Tags } = await ec2.send(
    new DescribeTagsCommand({
      Filters: [
        { Name: "resource-id", Values: [instanceId] },
        { Name: "key", Values: [ROLE_TAG] },
      ],
    }),
  );
  const value = Tags?.[0]?.Value;
  if (!value) throw new RoleError(`instance ${instanceId} has no '${ROLE_TAG}' tag`);
  return { roles: parseRoles(value), source: "describe-tags", instanceId };
}
