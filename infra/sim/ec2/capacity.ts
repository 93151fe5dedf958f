/**
 * What EC2 can give right now. The account's Standard on-demand quota counts the vCPUs of its pending and running
 * instances (stopped ones hold none); past it, RunInstances launches the most that fit above MinCount, or answers
 * VcpuLimitExceeded, and StartInstances answers VcpuLimitExceeded. Apart from the quota, a zone may simply have no
 * more machines of a type for a while: InsufficientInstanceCapacity, on a start as on a launch.
 */
import { QueryError } from "../query-protocol.ts";
import type { Instance } from "./model.ts";

/** vCPUs per instance type (EC2's published figures); types not listed count 2. */
const VCPUS: Record<string, number> = {
  "m1.small": 1,
  "t3.nano": 2,
  "t3.micro": 2,
  "t3.small": 2,
  "t3.medium": 2,
  "t3.large": 2,
  "t3.xlarge": 4,
  "t3.2xlarge": 8,
  "c5.large": 2,
  "c5.xlarge": 4,
  "c7i.large": 2,
  "c7i.xlarge": 4,
  "c7i.2xlarge": 8,
  "m5.large": 2,
  "m5.xlarge": 4,
};

export const vcpusOf = (instanceType: string) => VCPUS[instanceType] ?? 2;

export interface CapacitySettings {
  /** The Standard on-demand vCPU quota (new accounts often have 32); Infinity: none. */
  vcpuQuota: number;
  /** Instances the zones can still give (launches and starts take from it); undefined: as many as asked. */
  instancesAvailable?: number;
  /** Availability zones out of machines for now: a launch or start there gets InsufficientInstanceCapacity. */
  exhaustedZones: Set<string>;
}

const HOLDING_VCPUS: ReadonlySet<Instance["state"]> = new Set(["pending", "running"]);

export function vcpusInUse(instances: Iterable<Instance>): number {
  let total = 0;
  for (const instance of instances) if (HOLDING_VCPUS.has(instance.state)) total += vcpusOf(instance.instanceType);
  return total;
}

const vcpuLimitExceeded = (quota: number) =>
  new QueryError(
    "VcpuLimitExceeded",
    `You have requested more vCPU capacity than your current vCPU limit of ${quota} allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.`,
  );

const insufficientCapacity = (instanceType: string, zone: string) =>
  new QueryError(
    "InsufficientInstanceCapacity",
    `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${zone}). Our system will be working on provisioning additional capacity.`,
  );

/** How many of `min..max` new instances of a type EC2 gives now in a zone (taking them from what it has), or its error. */
export function grantLaunch(settings: CapacitySettings, inUse: number, instanceType: string, min: number, max: number, zone: string): number {
  const byQuota = Math.floor((settings.vcpuQuota - inUse) / vcpusOf(instanceType));
  if (byQuota < min) throw vcpuLimitExceeded(settings.vcpuQuota);
  const available = settings.exhaustedZones.has(zone) ? 0 : (settings.instancesAvailable ?? Infinity);
  if (available < min) throw insufficientCapacity(instanceType, zone);
  const granted = Math.min(max, byQuota, available);
  if (settings.instancesAvailable !== undefined) settings.instancesAvailable -= granted;
  return granted;
}

/** A start of stopped instances (each in its zone): all of them, or an error. */
export function grantStart(settings: CapacitySettings, inUse: number, starting: { instance: Instance; zone: string }[]): void {
  if (starting.length === 0) return;
  const vcpus = starting.reduce((sum, { instance }) => sum + vcpusOf(instance.instanceType), 0);
  if (inUse + vcpus > settings.vcpuQuota) throw vcpuLimitExceeded(settings.vcpuQuota);
  const stuck = starting.find(({ zone }) => settings.exhaustedZones.has(zone));
  if (stuck) throw insufficientCapacity(stuck.instance.instanceType, stuck.zone);
  if ((settings.instancesAvailable ?? Infinity) < starting.length) throw insufficientCapacity(starting[0]!.instance.instanceType, starting[0]!.zone);
  if (settings.instancesAvailable !== undefined) settings.instancesAvailable -= starting.length;
}
