/**
 * The deployment's state file, `.facefleet/<prefix>.json` (gitignored) unless --state-file says otherwise: what
 * bootstrap created, the AMI bake-ami made, the instances launch started. Teardown does not depend on it: it finds
 * everything by the deployment tag.
 */
import { Type, type Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Config } from "../roles/config.ts";

export const DeploymentStateSchema = Type.Object({
  prefix: Type.String(),
  region: Type.String(),
  buckets: Type.Record(Type.String(), Type.String()),
  queueUrls: Type.Record(Type.String(), Type.String()),
  vpcId: Type.Optional(Type.String()),
  subnetIds: Type.Optional(Type.Array(Type.String())),
  securityGroupId: Type.Optional(Type.String()),
  /** By instance role (web, app, builder). */
  roleArns: Type.Optional(Type.Record(Type.String(), Type.String())),
  instanceProfileArns: Type.Optional(Type.Record(Type.String(), Type.String())),
  launchTemplateId: Type.Optional(Type.String()),
  launchTemplateName: Type.Optional(Type.String()),
  imageId: Type.Optional(Type.String()),
  instances: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String()))),
  /**
   * What bootstrap applied but could not yet read back when it gave up waiting (AWS propagates some changes for
   * minutes): the next bootstrap checks it again. Absent once everything read back.
   */
  readBackPending: Type.Optional(Type.Array(Type.String())),
});
export type DeploymentState = Static<typeof DeploymentStateSchema>;

/** The subnets bootstrap chose (given with --vpc-id or --subnet-ids), over which app instances are spread. */
export function appNetworkOf(state: DeploymentState): Config["appNetwork"] {
  const { subnetIds = [], securityGroupId } = state;
  return subnetIds.length > 0 && securityGroupId ? { subnetIds, securityGroupId } : undefined;
}

export function stateFilePath(prefix: string, override?: string): string {
  return override ?? join(".facefleet", `${prefix}.json`);
}

export function readState(path: string): DeploymentState | undefined {
  if (!existsSync(path)) return undefined;
  const value: unknown = JSON.parse(readFileSync(path, "utf8"));
  if (!Value.Check(DeploymentStateSchema, value)) throw new Error(`${path} is not a facefleet state file`);
  return value;
}

export function requireState(path: string): DeploymentState {
  const state = readState(path);
  if (!state) throw new Error(`no state file at ${path}: run infra/bootstrap.ts first`);
  if (state.readBackPending?.length) {
    process.stderr.write(`note: bootstrap could not yet read back: ${state.readBackPending.join("; ")}. AWS may still be propagating it; infra/bootstrap.ts again checks (and changes nothing if it has)\n`);
  }
  return state;
}

/** Merges the update into the file's current contents (a field set to undefined is removed). */
export function writeState(path: string, update: Partial<DeploymentState> & Pick<DeploymentState, "prefix" | "region">): DeploymentState {
  const current = readState(path);
  const next = { buckets: {}, queueUrls: {}, ...current, ...update };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(next, null, 2)}\n`);
  return next;
}

export function removeState(path: string): void {
  rmSync(path, { force: true });
}
