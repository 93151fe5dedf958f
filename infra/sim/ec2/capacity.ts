/**
 * What EC2 can give right now. The account's Standard on-demand quota counts the vCPUs of its pending and running
 * instances (stopped ones hold none); past it, RunInstances launches the most that fit above MinCount, or answers
 * VcpuLimitExceeded, and StartInstances answers VcpuLimitExceeded. Apart from the quota, a zone may simply have no
 * more machines of a type for a while: InsufficientInstanceCapacity, on a start as on a launch. And a zone may not offer
 * a type at all: Unsupported (not every zone of a region has every type, us-east-1e has no t3).
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
  /** Zone -> the instance types it does not offer: a launch or start of one there gets Unsupported. */
  unofferedTypes: Map<string, Set<string>>;
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

const unsupported = (instanceType: string, zone: string) =>
  new QueryError(
    "Unsupported",
    `Your requested instance type (${instanceType}) is not supported in your requested Availability Zone (${zone}). Please retry your request by not specifying an Availability Zone or choosing another one.`,
  );

function refuseUnoffered(settings: CapacitySettings, instanceType: string, zone: string): void {
  if (settings.unofferedTypes.get(zone)?.has(instanceType)) throw unsupported(instanceType, zone);
}

/** How many of `min..max` new instances of a type EC2 gives now in a zone (taking them from what it has), or its error. */
export function grantLaunch(settings: CapacitySettings, inUse: number, instanceType: string, min: number, max: number, zone: string): number {
  refuseUnoffered(settings, instanceType, zone);
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
  for (const { instance, zone } of starting) refuseUnoffered(settings, instance.instanceType, zone);
  const vcpus = starting.reduce((sum, { instance }) => sum + vcpusOf(instance.instanceType), 0);
  if (inUse + vcpus > settings.vcpuQuota) throw vcpuLimitExceeded(settings.vcpuQuota);
  const stuck = starting.find(({ zone }) => settings.exhaustedZones.has(zone));
  if (stuck) throw insufficientCapacity(stuck.instance.instanceType, stuck.zone);
  if ((settings.instancesAvailable ?? Infinity) < starting.length) throw insufficientCapacity(starting[0]!.instance.instanceType, starting[0]!.zone);
  if (settings.instancesAvailable !== undefined) settings.instancesAvailable -= starting.length;
}
