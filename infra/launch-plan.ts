/**
 * launch's decision as data: which instances the deployment should have (the web tier with the controller on it or
 * beside it, and a warm pool of stopped app instances or none) against those it has. Running launch again only
 * fills what is missing; it never stops or terminates what the controller manages.
 */
export type InstanceRoleTag = "web" | "controller" | "web+controller" | "app";

export interface ExistingInstance {
  id: string;
  role: string;
  state: string;
}

export interface LaunchOptions {
  colocateController: boolean;
  pool: "warm" | "cold";
  poolSize: number;
}

export type LaunchAction =
  | { kind: "launch"; role: InstanceRoleTag; count: number; thenStop: boolean }
  | { kind: "start"; role: InstanceRoleTag; ids: string[] };

const GONE = new Set(["shutting-down", "terminated"]);
const STARTABLE = new Set(["stopped", "stopping"]);

export function serviceRoles(colocateController: boolean): InstanceRoleTag[] {
  return colocateController ? ["web+controller"] : ["web", "controller"];
}

/** The instances that count: not shutting down or terminated (a launch that failed as it booted is one of those). */
export function aliveInstances(existing: ExistingInstance[]): ExistingInstance[] {
  return existing.filter((instance) => !GONE.has(instance.state));
}

export function planLaunch(existing: ExistingInstance[], options: LaunchOptions): LaunchAction[] {
  const alive = aliveInstances(existing);
  const actions: LaunchAction[] = [];
  for (const role of serviceRoles(options.colocateController)) {
    const mine = alive.filter((instance) => instance.role === role);
    if (mine.length === 0) actions.push({ kind: "launch", role, count: 1, thenStop: false });
    else if (mine.every((instance) => STARTABLE.has(instance.state))) actions.push({ kind: "start", role, ids: [mine[0]!.id] });
  }
  const pool = alive.filter((instance) => instance.role === "app").length;
  const wanted = options.pool === "warm" ? options.poolSize : 0;
  if (pool < wanted) actions.push({ kind: "launch", role: "app", count: wanted - pool, thenStop: true });
  return actions;
}

export function describeLaunchAction(action: LaunchAction): string {
  if (action.kind === "start") return `start the stopped ${action.role} instance ${action.ids.join(", ")}`;
  const what = `${action.count} ${action.role} instance${action.count === 1 ? "" : "s"}`;
  return action.thenStop ? `launch ${what} and stop them once running (warm pool)` : `launch ${what}`;
}
