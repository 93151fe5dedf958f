/**
 * The EC2 Query API emulator: `startEc2Emulator()` serves the actions under `actions/` on a loopback port, with
 * instances that run a local process while they are `running`.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { FaultSwitch } from "../faults.ts";
import { QueryError, toXml, type Params } from "../query-protocol.ts";
import { serveQuery } from "../query-server.ts";
import { accountActions } from "./actions/account.ts";
import { imageActions } from "./actions/images.ts";
import { instanceActions } from "./actions/instances.ts";
import { launchTemplateActions } from "./actions/launch-templates.ts";
import { createDefaultVpc, networkActions } from "./actions/networks.ts";
import { securityGroupActions } from "./actions/security-groups.ts";
import { tagActions } from "./actions/tags.ts";
import type { CapacitySettings } from "./capacity.ts";
import type { EbsEncryption, Ec2Context } from "./context.ts";
import { InstanceLifecycle } from "./lifecycle.ts";
import { Ec2Store, type Instance, type InstanceStateName } from "./model.ts";
import type { ProcessSpec } from "./process.ts";

const NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/";

export interface Ec2EmulatorOptions {
  region?: string;
  /** pending -> running after RunInstances, in ms (0 in tests). */
  bootDelayMs?: number;
  /** pending -> running after StartInstances of a stopped instance, in ms (default: bootDelayMs). */
  startDelayMs?: number;
  /** stopping -> stopped and shutting-down -> terminated once the process has ended, in ms. */
  stopDelayMs?: number;
  /** How long a new instance or image answers NotFound when described by its id, as EC2 may (default 0). */
  readAfterCreateLagMs?: number;
  /** How long a new security group is NotFound to the calls that name it (default 0). */
  securityGroupLagMs?: number;
  /** How long a new instance profile is refused by RunInstances and CreateLaunchTemplate (default 0). */
  instanceProfileLagMs?: number;
  /** When the named instance profile was created (the region asks its IAM); without it, profiles are not checked. */
  instanceProfileCreatedAt?(name: string): number | undefined;
  /** SIGTERM -> SIGKILL when an instance's process is ended (default 2000 ms). */
  killGraceMs?: number;
  /** false: the account has no default VPC (organisation accounts often have none), only a VPC of its own with two subnets. */
  defaultVpc?: boolean;
  /** The account's Standard on-demand vCPU quota, counted over pending and running instances (default: none). */
  vcpuQuota?: number;
  /** Where each instance's process writes `<instance id>.log`. */
  logDir: string;
  /** Where each instance's root volume is a directory `<instance id>` (default: `volumes` under logDir). */
  volumeDir?: string;
  /** The process an instance runs while running (none when this returns undefined or is omitted). */
  processFor?(instance: Instance): ProcessSpec | undefined;
  /** Stock images registered at start (default: one Amazon Linux 2023 image). */
  stockImages?: string[];
  /** Called for each new instance before it boots. */
  onLaunch?(instance: Instance): void;
  /** Refuses a call its caller may not make (see infra/sim/iam/access.ts). */
  authorize?(action: string, params: Params, request: Request, store: Ec2Store): void;
  /** Whether the caller may create a grant on a KMS key for EC2 (see EbsEncryption); without it, everyone may. */
  mayCreateGrant?(request: Request, keyArn: string): boolean;
}

export interface InstanceSummary {
  id: string;
  state: InstanceStateName;
  imageId: string;
  tags: Record<string, string>;
  pid?: number;
  logPath: string;
}

export interface Ec2Emulator {
  endpoint: string;
  region: string;
  store: Ec2Store;
  faults: FaultSwitch;
  /** Every Action requested, in order. */
  actions: string[];
  /** Stock image ids by name. */
  stockImages: Record<string, string>;
  /** The vCPU quota and the instances the zone can still give (InsufficientInstanceCapacity past them); change at will. */
  capacity: CapacitySettings;
  /** The account's EBS encryption by default: `{ byDefault: true, kmsKeyArn }` plays a customer managed key. */
  ebsEncryption: EbsEncryption;
  /** The delays can change while the emulator runs (a simulation compares them). */
  delays: { bootDelayMs: number; startDelayMs?: number; stopDelayMs: number; readAfterCreateLagMs: number; securityGroupLagMs: number; instanceProfileLagMs: number };
  instances(): InstanceSummary[];
  /** The directory that plays the instance's root volume: its image's files for an image made by CreateImage, else its own. */
  volumeOf(instance: Instance): string;
  /** Sends `signal` (default SIGKILL) to the instance's process; false when it has none. */
  killProcess(instanceId: string, signal?: NodeJS.Signals): boolean;
  waitForState(instanceId: string, state: InstanceStateName, timeoutMs?: number): Promise<void>;
  /** Ends every instance process, then the server. */
  stop(): Promise<void>;
}

const DEFAULT_STOCK_IMAGE = "al2023-ami-2023.6-emulated-x86_64";

export function startEc2Emulator(options: Ec2EmulatorOptions): Ec2Emulator {
  const region = options.region ?? "us-east-1";
  mkdirSync(options.logDir, { recursive: true });
  const store = new Ec2Store();
  const delays: Ec2Emulator["delays"] = {
    bootDelayMs: options.bootDelayMs ?? 0,
    startDelayMs: options.startDelayMs,
    stopDelayMs: options.stopDelayMs ?? 0,
    readAfterCreateLagMs: options.readAfterCreateLagMs ?? 0,
    securityGroupLagMs: options.securityGroupLagMs ?? 0,
    instanceProfileLagMs: options.instanceProfileLagMs ?? 0,
  };
  const lifecycle = new InstanceLifecycle({
    get bootDelayMs() {
      return delays.bootDelayMs;
    },
    get startDelayMs() {
      return delays.startDelayMs ?? delays.bootDelayMs;
    },
    get stopDelayMs() {
      return delays.stopDelayMs;
    },
    killGraceMs: options.killGraceMs ?? 2000,
    logDir: options.logDir,
    processFor: (instance) => options.processFor?.(instance),
  });
  if (options.defaultVpc === false) {
    const vpcId = store.newId("vpc");
    store.vpcs.set(vpcId, { id: vpcId, cidr: "10.0.0.0/16", isDefault: false });
    ["a", "b"].forEach((zone, index) => {
      const id = store.newId("subnet");
      store.subnets.set(id, { id, vpcId, cidr: `10.0.${index}.0/24`, availabilityZone: `${region}${zone}`, defaultForAz: false });
    });
  } else {
    createDefaultVpc(store, region);
  }
  const stockImages: Record<string, string> = {};
  for (const name of options.stockImages ?? [DEFAULT_STOCK_IMAGE]) {
    const id = store.newId("ami");
    store.images.set(id, { id, name, description: `${name} (stock image of the emulated region)`, state: "available", creationDate: new Date() });
    stockImages[name] = id;
  }
  const volumeDir = options.volumeDir ?? join(options.logDir, "volumes");
  const volumeOf = (instance: Instance) => store.images.get(instance.imageId)?.rootDir ?? join(volumeDir, instance.id);
  const faults = new FaultSwitch();
  const capacity: CapacitySettings = { vcpuQuota: options.vcpuQuota ?? Infinity, exhaustedZones: new Set(), unofferedTypes: new Map() };
  const ebsEncryption: EbsEncryption = { byDefault: false };
  const context: Ec2Context = {
    volumeOf,
    store,
    lifecycle,
    region,
    capacity,
    get readAfterCreateLagMs() {
      return delays.readAfterCreateLagMs;
    },
    get securityGroupLagMs() {
      return delays.securityGroupLagMs;
    },
    get instanceProfileLagMs() {
      return delays.instanceProfileLagMs;
    },
    instanceProfileCreatedAt: options.instanceProfileCreatedAt,
    ebsEncryption,
    mayCreateGrant: options.mayCreateGrant,
    onLaunch: (id) => options.onLaunch?.(store.instances.get(id)!),
  };
  const server = serveQuery({
    name: "EC2",
    handlers: { ...networkActions, ...instanceActions, ...tagActions, ...imageActions, ...securityGroupActions, ...launchTemplateActions, ...accountActions },
    context,
    faults,
    faultErrors: {
      throttle: new QueryError("RequestLimitExceeded", "Request limit exceeded.", 503),
      "server-error": new QueryError("InternalError", "An internal error has occurred.", 500),
    },
    authorize: (action, params, request) => options.authorize?.(action, params, request, store),
    success: (action, result, requestId) => `<${action}Response xmlns="${NAMESPACE}"><requestId>${requestId}</requestId>${toXml(result, "item")}</${action}Response>`,
    error: (error, requestId) =>
      `<Response><Errors><Error><Code>${error.code}</Code><Message>${toXml(error.message, "item")}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`,
  });

  const instances = (): InstanceSummary[] => {
    const pids = new Map(lifecycle.running().map((process) => [process.instanceId, process.pid]));
    return [...store.instances.values()].map((instance) => ({
      id: instance.id,
      state: instance.state,
      imageId: instance.imageId,
      tags: store.tagsOf(instance.id),
      pid: pids.get(instance.id),
      logPath: lifecycle.logPath(instance.id),
    }));
  };

  return {
    endpoint: server.endpoint,
    region,
    store,
    faults,
    actions: server.actions,
    stockImages,
    capacity,
    ebsEncryption,
    delays,
    instances,
    volumeOf,
    killProcess: (instanceId, signal = "SIGKILL") => lifecycle.signal(instanceId, signal),
    async waitForState(instanceId, state, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (store.instances.get(instanceId)?.state !== state) {
        if (Date.now() > deadline) throw new Error(`${instanceId} is ${store.instances.get(instanceId)?.state ?? "unknown"}, not ${state}, after ${timeoutMs} ms`);
        await Bun.sleep(10);
      }
    },
    async stop() {
      await lifecycle.shutdownAll();
      await server.stop();
    },
  };
}

