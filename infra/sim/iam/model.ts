/**
 * What the IAM emulator keeps: roles with inline policies, attached managed policies and tags, instance profiles with
 * their role. A role policy put takes effect (is read back and enforced) `policyChangeDelayMs` later, as IAM's changes
 * "take several minutes" to propagate; default at once.
 */
import { ACCOUNT_ID } from "../ec2/model.ts";

export interface Role {
  name: string;
  id: string;
  path: string;
  createDate: Date;
  description?: string;
  assumeRolePolicyDocument: string;
  policies: Map<string, string>;
  /** ARNs of the managed policies attached to it. */
  attachedPolicies: Set<string>;
  tags: Map<string, string>;
}

export interface InstanceProfile {
  name: string;
  id: string;
  path: string;
  createDate: Date;
  roleNames: string[];
  tags: Map<string, string>;
}

export class IamStore {
  readonly roles = new Map<string, Role>();
  readonly instanceProfiles = new Map<string, InstanceProfile>();
  policyChangeDelayMs = 0;
  private readonly pendingPolicies: { roleName: string; policyName: string; document: string; at: number }[] = [];
  private serial = 0;

  putRolePolicy(role: Role, policyName: string, document: string, now = Date.now()): void {
    if (this.policyChangeDelayMs <= 0) role.policies.set(policyName, document);
    else this.pendingPolicies.push({ roleName: role.name, policyName, document, at: now + this.policyChangeDelayMs });
  }

  /** Applies the policy changes whose time has come; called before anything reads a role. */
  settle(now = Date.now()): void {
    for (let due = this.pendingPolicies.findIndex((change) => change.at <= now); due >= 0; due = this.pendingPolicies.findIndex((change) => change.at <= now)) {
      const [change] = this.pendingPolicies.splice(due, 1);
      this.roles.get(change!.roleName)?.policies.set(change!.policyName, change!.document);
    }
  }

  newId(prefix: string): string {
    this.serial += 1;
    return `${prefix}${this.serial.toString(36).toUpperCase().padStart(17, "0")}`;
  }
}

export const roleArn = (role: Role) => `arn:aws:iam::${ACCOUNT_ID}:role${role.path}${role.name}`;
export const instanceProfileArn = (profile: InstanceProfile) => `arn:aws:iam::${ACCOUNT_ID}:instance-profile${profile.path}${profile.name}`;
