/** What the IAM emulator keeps: roles with inline policies and tags, instance profiles with their role. */
import { ACCOUNT_ID } from "../ec2/model.ts";

export interface Role {
  name: string;
  id: string;
  path: string;
  createDate: Date;
  description?: string;
  assumeRolePolicyDocument: string;
  policies: Map<string, string>;
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
  private serial = 0;

  newId(prefix: string): string {
    this.serial += 1;
    return `${prefix}${this.serial.toString(36).toUpperCase().padStart(17, "0")}`;
  }
}

export const roleArn = (role: Role) => `arn:aws:iam::${ACCOUNT_ID}:role${role.path}${role.name}`;
export const instanceProfileArn = (profile: InstanceProfile) => `arn:aws:iam::${ACCOUNT_ID}:instance-profile${profile.path}${profile.name}`;
