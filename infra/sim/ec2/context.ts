/** What every EC2 action handler gets: the store, the instance lifecycle and where the region is. */
import type { Params, XmlValue } from "../query-protocol.ts";
import type { CapacitySettings } from "./capacity.ts";
import type { InstanceLifecycle } from "./lifecycle.ts";
import type { Ec2Store, Instance } from "./model.ts";

export interface Ec2Context {
  store: Ec2Store;
  lifecycle: InstanceLifecycle;
  region: string;
  /**
   * EC2 is eventually consistent: for this long after an instance or image is created, describing it by its id answers
   * NotFound, as EC2 may.
   */
  readonly readAfterCreateLagMs: number;
  /** The vCPU quota and what the zone can give; tests change it while the emulator runs. */
  capacity: CapacitySettings;
  /** For this long after CreateSecurityGroup, calls naming the new group answer InvalidGroup.NotFound. */
  readonly securityGroupLagMs: number;
  /** For this long after an instance profile's creation, RunInstances and CreateLaunchTemplate refuse it. */
  readonly instanceProfileLagMs: number;
  /** When the named instance profile was created (ms since the epoch); undefined: no such profile. Without it, profiles are not checked. */
  instanceProfileCreatedAt?(name: string): number | undefined;
  /** The directory that plays the instance's root volume. */
  volumeOf(instance: Instance): string;
  /** Called for each instance RunInstances creates, before it boots (the region starts its metadata service). */
  onLaunch(instanceId: string): void;
  /** The account's EBS encryption by default; tests change it while the emulator runs. */
  ebsEncryption: EbsEncryption;
  /** Whether the caller may create a grant on the KMS key for EC2 (kms:CreateGrant); without it, every caller may. */
  mayCreateGrant?(request: Request, keyArn: string): boolean;
}

/**
 * EBS encryption by default (an account and region setting). With a customer managed key, EC2 creates a grant on the
 * key for each volume it attaches, as the caller of RunInstances or StartInstances: a caller that may not
 * (kms:CreateGrant) sees its instance go pending, then terminated (launch) or stopped (start) with
 * Client.InternalError.
 */
export interface EbsEncryption {
  byDefault: boolean;
  /** The default key's ARN; undefined: the AWS managed key alias/aws/ebs, which needs no grant from the caller. */
  kmsKeyArn?: string;
  /**
   * Whether the key's policy lets the operator's credentials (those the infra scripts run with, not an instance's
   * role) create grants; false plays a key policy that names other principals only. Undefined: it does.
   */
  operatorMayCreateGrant?: boolean;
}

export type Ec2Handler = (params: Params, context: Ec2Context, request?: Request) => XmlValue | Promise<XmlValue>;
