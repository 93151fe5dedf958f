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
}

export type Ec2Handler = (params: Params, context: Ec2Context) => XmlValue | Promise<XmlValue>;
