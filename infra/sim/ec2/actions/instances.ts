/** RunInstances, DescribeInstances, StartInstances, StopInstances, TerminateInstances. */
import { QueryError, record, text, texts, type Params, type XmlValue } from "../../query-protocol.ts";
import { grantLaunch, grantStart, vcpusInUse } from "../capacity.ts";
import { requireUsableProfile } from "../consistency.ts";
import type { Ec2Context, Ec2Handler } from "../context.ts";
import { filtersOf, matchesFilters, paginate } from "../filters.ts";
import { launchVolumes, mergeLaunchSpecs, parseLaunchSpec, requireLaunchField } from "../launch-spec.ts";
import { ACCOUNT_ID, ROOT_DEVICE_NAME, STATE_CODES, STOCK_IMAGE_MAPPINGS, type BlockDeviceMapping, type Ec2Store, type Instance, type LaunchSpec, type Subnet } from "../model.ts";
import { noDefaultVpc } from "./networks.ts";
import { instanceXml, reservationXml, stateXml } from "../render.ts";
import { findLaunchTemplate, templateVersion } from "./launch-templates.ts";

// Amazon Linux 2023 images require IMDSv2 tokens by default.
const DEFAULT_METADATA_OPTIONS = { httpTokens: "required", httpEndpoint: "enabled", httpPutResponseHopLimit: 1, instanceMetadataTags: "disabled" };

/** A RunInstances as EC2 resolves it: the caller's settings over the template's, and the volumes the instance gets. */
export interface ResolvedLaunch {
  spec: LaunchSpec;
  template?: Instance["launchTemplate"];
  volumes: BlockDeviceMapping[];
}

export function resolveLaunch(params: Params, store: Ec2Store): ResolvedLaunch {
  const reference = record(params, "LaunchTemplate");
  const request = parseLaunchSpec(params);
  let base: LaunchSpec = {};
  let template: Instance["launchTemplate"];
  if (Object.keys(reference).length) {
    const found = findLaunchTemplate(store, text(reference, "LaunchTemplateId"), text(reference, "LaunchTemplateName"));
    const version = templateVersion(found, text(reference, "Version"));
    base = found.versions.get(version)!.spec;
    template = { id: found.id, version };
  }
  const spec = mergeLaunchSpecs(base, request);
  const image = spec.imageId === undefined ? undefined : store.images.get(spec.imageId);
  return { spec, template, volumes: launchVolumes(image, base.blockDeviceMappings, request.blockDeviceMappings) };
}

const VOLUME_TYPES = new Set(["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"]);

/** What EC2 refuses of the volumes before it launches anything: an unknown type, a size below the snapshot or over 64 TiB. */
function checkVolumes(volumes: BlockDeviceMapping[], snapshotSizes: Map<string, number>): void {
  for (const { deviceName, ebs } of volumes) {
    const snapshotSize = ebs?.snapshotId === undefined ? undefined : snapshotSizes.get(ebs.snapshotId);
    const size = ebs?.volumeSize ?? snapshotSize;
    if (ebs?.volumeType !== undefined && !VOLUME_TYPES.has(ebs.volumeType)) throw new QueryError("InvalidParameterValue", `Value (${ebs.volumeType}) for parameter volumeType is invalid.`);
    if (size === undefined || !Number.isInteger(size) || size < 1 || size > 65536) throw new QueryError("InvalidParameterValue", `Invalid volume size for ${deviceName}: ${size}`);
    if (snapshotSize !== undefined && size < snapshotSize) {
      throw new QueryError("InvalidBlockDeviceMapping", `Volume of size ${size}GB is smaller than snapshot '${ebs!.snapshotId}', expect size >= ${snapshotSize}GB`);
    }
  }
}

/** The size of each image's root snapshot, by snapshot id. */
function snapshotSizes(store: Ec2Store): Map<string, number> {
  const mappings = [...STOCK_IMAGE_MAPPINGS, ...[...store.images.values()].flatMap((image) => image.blockDeviceMappings ?? [])];
  return new Map(mappings.flatMap(({ ebs }) => (ebs?.snapshotId !== undefined && ebs.volumeSize !== undefined ? [[ebs.snapshotId, ebs.volumeSize] as const] : [])));
}

/** The root volume an image made of this instance records: its snapshot of the instance's root, of the same size and type. */
export function imageRootMapping(instance: Instance, snapshotId: string): BlockDeviceMapping[] {
  const root = instance.volumes.find((volume) => volume.deviceName === ROOT_DEVICE_NAME);
  return [{ deviceName: ROOT_DEVICE_NAME, ebs: { ...root?.ebs, snapshotId } }];
}

function instancesById(params: Params, context: Ec2Context, { visibleOnly = false } = {}): Instance[] {
  return texts(params, "InstanceId").map((id) => {
    const instance = context.store.instances.get(id);
    const hidden = visibleOnly && instance && Date.now() - instance.launchTime.getTime() < context.readAfterCreateLagMs;
    if (!instance || hidden) throw new QueryError("InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
    return instance;
  });
}

/** The request's (or template's) subnet; without one, the default VPC's first default subnet, as EC2 picks one. */
function launchSubnet(spec: LaunchSpec, { store }: Ec2Context): Subnet {
  const id = spec.networkInterface?.subnetId ?? spec.subnetId;
  if (id !== undefined) {
    const subnet = store.subnets.get(id);
    if (!subnet) throw new QueryError("InvalidSubnetID.NotFound", `The subnet ID '${id}' does not exist`);
    return subnet;
  }
  const fallback = [...store.subnets.values()].find((subnet) => subnet.defaultForAz);
  if (!fallback) throw noDefaultVpc();
  return fallback;
}

const KMS_REFUSED = { code: "Client.InternalError", message: "Client.InternalError: Client error on launch" };

/** Whether EC2 can create the grant on the account's default EBS key for this caller (see EbsEncryption). */
function volumeKeyUsable(context: Ec2Context, request: Request | undefined): boolean {
  const { byDefault, kmsKeyArn } = context.ebsEncryption;
  if (!byDefault || kmsKeyArn === undefined || !request || !context.mayCreateGrant) return true;
  return context.mayCreateGrant(request, kmsKeyArn);
}

const runInstances: Ec2Handler = (params, context, request) => {
  const { store } = context;
  const { spec, template, volumes } = resolveLaunch(params, store);
  const imageId = requireLaunchField(spec.imageId, "ImageId");
  requireUsableProfile(spec, context);
  if (!store.images.has(imageId)) throw new QueryError("InvalidAMIID.NotFound", `The image id '[${imageId}]' does not exist`);
  checkVolumes(volumes, snapshotSizes(store));
  const securityGroupIds = spec.networkInterface?.groupIds ?? spec.securityGroupIds ?? [];
  for (const groupId of securityGroupIds) {
    if (!store.securityGroups.has(groupId)) throw new QueryError("InvalidGroup.NotFound", `The security group '${groupId}' does not exist`);
  }
  const subnet = launchSubnet(spec, context);
  const minCount = Number(text(params, "MinCount") ?? 1);
  const maxCount = Number(text(params, "MaxCount") ?? minCount);
  if (!(minCount >= 1 && maxCount >= minCount)) throw new QueryError("InvalidParameterValue", "MinCount and MaxCount must be at least 1, MinCount <= MaxCount");
  const instanceType = spec.instanceType ?? "m1.small";
  const count = grantLaunch(context.capacity, vcpusInUse(store.instances.values()), instanceType, minCount, maxCount, subnet.availabilityZone);
  const reservationId = store.newId("r");
  const instanceTags = Object.assign({}, ...(spec.tagSpecifications ?? []).filter((tags) => tags.resourceType === "instance").map((tags) => tags.tags));
  const instances: Instance[] = [];
  const keyUsable = volumeKeyUsable(context, request);
  for (let launchIndex = 0; launchIndex < count; launchIndex += 1) {
    const id = store.newId("i");
    const serial = store.instances.size + 1;
    const instance: Instance = {
      id,
      reservationId,
      launchIndex,
      imageId,
      instanceType,
      launchTime: new Date(),
      state: "pending",
      userData: spec.userData,
      metadataOptions: { ...DEFAULT_METADATA_OPTIONS, ...spec.metadataOptions },
      iamInstanceProfile: spec.iamInstanceProfile && {
        name: spec.iamInstanceProfile.name ?? spec.iamInstanceProfile.arn?.split("/").pop(),
        arn: spec.iamInstanceProfile.arn ?? `arn:aws:iam::${ACCOUNT_ID}:instance-profile/${spec.iamInstanceProfile.name}`,
      },
      securityGroupIds,
      subnetId: subnet.id,
      vpcId: subnet.vpcId,
      shutdownBehavior: spec.instanceInitiatedShutdownBehavior === "terminate" ? "terminate" : "stop",
      privateIp: `10.0.${Math.floor(serial / 250)}.${(serial % 250) + 4}`,
      launchTemplate: template,
      volumes,
    };
    store.instances.set(id, instance);
    store.addTags(id, instanceTags);
    context.onLaunch(id);
    if (keyUsable) context.lifecycle.launch(instance);
    else context.lifecycle.failBoot(instance, "terminated", KMS_REFUSED);
    instances.push(instance);
  }
  return reservationXml(reservationId, instances.map((instance) => instanceXml(store, instance, context.region)));
};

const describeInstances: Ec2Handler = (params, context) => {
  const { store } = context;
  const filters = filtersOf(params);
  const candidates = texts(params, "InstanceId").length ? instancesById(params, context, { visibleOnly: true }) : [...store.instances.values()];
  const matching = candidates.filter((instance) =>
    matchesFilters(
      filters,
      {
        "instance-id": instance.id,
        "instance-state-name": instance.state,
        "instance-state-code": String(STATE_CODES[instance.state]),
        "image-id": instance.imageId,
        "instance-type": instance.instanceType,
        "reservation-id": instance.reservationId,
        "instance.group-id": instance.securityGroupIds,
        "subnet-id": instance.subnetId,
        "vpc-id": instance.vpcId,
        "private-ip-address": instance.privateIp,
      },
      store.tagsOf(instance.id),
    ),
  );
  const { page, nextToken } = paginate(matching, params);
  const reservations = new Map<string, XmlValue[]>();
  for (const instance of page) {
    const group = reservations.get(instance.reservationId) ?? [];
    group.push(instanceXml(store, instance, context.region));
    reservations.set(instance.reservationId, group);
  }
  return { reservationSet: [...reservations].map(([reservationId, instances]) => reservationXml(reservationId, instances)), nextToken };
};

/**
 * Start, stop and terminate check every instance first (and what a start needs of the capacity), then answer each
 * one's previous and current state.
 */
const transition =
  (
    blockedFrom: Instance["state"][],
    change: (context: Ec2Context, instance: Instance, request: Request | undefined) => void,
    check?: (context: Ec2Context, instances: Instance[]) => void,
  ): Ec2Handler =>
  (params, context, request) => {
    const instances = instancesById(params, context);
    const blocked = instances.find((instance) => blockedFrom.includes(instance.state));
    if (blocked) throw new QueryError("IncorrectInstanceState", `The instance '${blocked.id}' is not in a state from which the request can be performed (${blocked.state}).`);
    check?.(context, instances);
    return {
      instancesSet: instances.map((instance) => {
        const previousState = stateXml(instance.state);
        change(context, instance, request);
        return { instanceId: instance.id, currentState: stateXml(instance.state), previousState };
      }),
    };
  };

const startInstances = transition(
  ["terminated", "shutting-down", "stopping"],
  (context, instance, request) => (volumeKeyUsable(context, request) ? context.lifecycle.start(instance) : context.lifecycle.failBoot(instance, "stopped", KMS_REFUSED)),
  (context, instances) =>
    grantStart(
      context.capacity,
      vcpusInUse(context.store.instances.values()),
      instances
        .filter((instance) => instance.state === "stopped")
        .map((instance) => ({ instance, zone: context.store.subnets.get(instance.subnetId)?.availabilityZone ?? `${context.region}a` })),
    ),
);
// EC2 cannot stop an instance before it runs.
const stopInstances = transition(["terminated", "shutting-down", "pending"], (context, instance) => context.lifecycle.stop(instance));
const terminateInstances = transition([], (context, instance) => context.lifecycle.terminate(instance));

export const instanceActions: Record<string, Ec2Handler> = {
  RunInstances: runInstances,
  DescribeInstances: describeInstances,
  StartInstances: startInstances,
  StopInstances: stopInstances,
  TerminateInstances: terminateInstances,
};
