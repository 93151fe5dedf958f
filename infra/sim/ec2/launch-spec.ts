/** RunInstances parameters and launch template data share one shape; templates and requests merge field by field. */
import { QueryError, record, records, Repeated, tagParams, text, texts, type Params, type XmlValue } from "../query-protocol.ts";
import { STOCK_IMAGE_MAPPINGS, type BlockDeviceMapping, type Image, type LaunchSpec, type MetadataOptions, type TagSpecification } from "./model.ts";
import { tagSet } from "./render.ts";

const defined = <T extends object>(value: T): T => Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as T;

export function tagSpecificationsOf(params: Params): TagSpecification[] {
  return records(params, "TagSpecification").map((spec) => ({ resourceType: text(spec, "ResourceType") ?? "", tags: tagParams(spec, "Tag") }));
}

const numberOf = (params: Params, name: string) => {
  const value = text(params, name);
  return value === undefined ? undefined : Number(value);
};
const booleanOf = (params: Params, name: string) => {
  const value = text(params, name);
  return value === undefined ? undefined : value === "true";
};

/** `BlockDeviceMapping.N.DeviceName`, `.Ebs.VolumeSize`, …, `.NoDevice` (RunInstances and launch template data alike). */
function parseBlockDeviceMappings(params: Params): BlockDeviceMapping[] {
  return records(params, "BlockDeviceMapping").map((mapping) => {
    const ebs = record(mapping, "Ebs");
    const deviceName = text(mapping, "DeviceName");
    if (!deviceName) throw new QueryError("MissingParameter", "The request must contain the parameter BlockDeviceMapping.DeviceName");
    return defined({
      deviceName,
      noDevice: text(mapping, "NoDevice") === undefined ? undefined : true,
      ebs: Object.keys(ebs).length
        ? defined({
            volumeSize: numberOf(ebs, "VolumeSize"),
            volumeType: text(ebs, "VolumeType"),
            iops: numberOf(ebs, "Iops"),
            throughput: numberOf(ebs, "Throughput"),
            deleteOnTermination: booleanOf(ebs, "DeleteOnTermination"),
            encrypted: booleanOf(ebs, "Encrypted"),
            snapshotId: text(ebs, "SnapshotId"),
          })
        : undefined,
    });
  });
}

/**
 * The volumes an instance gets, device by device: the image's mapping, each field overridden by the later mappings
 * (the template's, then the caller's) of the same device name; a `NoDevice` drops the device, a new name adds one.
 */
export function launchVolumes(image: Image | undefined, ...mappings: (BlockDeviceMapping[] | undefined)[]): BlockDeviceMapping[] {
  const devices = new Map<string, BlockDeviceMapping>();
  for (const mapping of [image ? (image.blockDeviceMappings ?? STOCK_IMAGE_MAPPINGS) : [], ...mappings].flatMap((list) => list ?? [])) {
    if (mapping.noDevice) {
      devices.delete(mapping.deviceName);
      continue;
    }
    const before = devices.get(mapping.deviceName);
    devices.set(mapping.deviceName, { deviceName: mapping.deviceName, ebs: { ...before?.ebs, ...mapping.ebs } });
  }
  return [...devices.values()];
}

export function parseLaunchSpec(params: Params): LaunchSpec {
  const metadata = record(params, "MetadataOptions");
  const profile = record(params, "IamInstanceProfile");
  const hopLimit = text(metadata, "HttpPutResponseHopLimit");
  const groups = [...texts(params, "SecurityGroupId"), ...texts(params, "SecurityGroupIds")];
  const tagSpecifications = tagSpecificationsOf(params);
  const primary = records(params, "NetworkInterface").find((nic) => (text(nic, "DeviceIndex") ?? "0") === "0");
  const nicGroups = primary ? texts(primary, "SecurityGroupId") : [];
  const blockDeviceMappings = parseBlockDeviceMappings(params);
  return defined({
    imageId: text(params, "ImageId"),
    instanceType: text(params, "InstanceType"),
    userData: text(params, "UserData"),
    instanceInitiatedShutdownBehavior: text(params, "InstanceInitiatedShutdownBehavior"),
    metadataOptions: Object.keys(metadata).length
      ? defined<Partial<MetadataOptions>>({
          httpTokens: text(metadata, "HttpTokens"),
          httpEndpoint: text(metadata, "HttpEndpoint"),
          instanceMetadataTags: text(metadata, "InstanceMetadataTags"),
          httpPutResponseHopLimit: hopLimit === undefined ? undefined : Number(hopLimit),
        })
      : undefined,
    iamInstanceProfile: Object.keys(profile).length ? defined({ arn: text(profile, "Arn"), name: text(profile, "Name") }) : undefined,
    securityGroupIds: groups.length ? groups : undefined,
    subnetId: text(params, "SubnetId"),
    networkInterface: primary && defined({ subnetId: text(primary, "SubnetId"), groupIds: nicGroups.length ? nicGroups : undefined }),
    tagSpecifications: tagSpecifications.length ? tagSpecifications : undefined,
    tenancy: text(record(params, "Placement"), "Tenancy"),
    blockDeviceMappings: blockDeviceMappings.length ? blockDeviceMappings : undefined,
  });
}

/**
 * `override`'s fields win (block device mappings whole, as a new template version's do); metadata options merge per
 * option and tag specifications add up. RunInstances lays a caller's mappings over the template's with launchVolumes.
 */
export function mergeLaunchSpecs(base: LaunchSpec, override: LaunchSpec): LaunchSpec {
  return {
    ...base,
    ...override,
    metadataOptions: { ...base.metadataOptions, ...override.metadataOptions },
    tagSpecifications: [...(base.tagSpecifications ?? []), ...(override.tagSpecifications ?? [])],
  };
}

export function launchSpecXml(spec: LaunchSpec): XmlValue {
  const metadata = spec.metadataOptions;
  return {
    imageId: spec.imageId,
    instanceType: spec.instanceType,
    userData: spec.userData,
    instanceInitiatedShutdownBehavior: spec.instanceInitiatedShutdownBehavior,
    placement: spec.tenancy && { tenancy: spec.tenancy },
    iamInstanceProfile: spec.iamInstanceProfile && { arn: spec.iamInstanceProfile.arn, name: spec.iamInstanceProfile.name },
    securityGroupIdSet: spec.securityGroupIds,
    networkInterfaceSet: spec.networkInterface && [
      { deviceIndex: 0, subnetId: spec.networkInterface.subnetId, groupSet: spec.networkInterface.groupIds && new Repeated("groupId", spec.networkInterface.groupIds) },
    ],
    metadataOptions: metadata && {
      httpTokens: metadata.httpTokens,
      httpEndpoint: metadata.httpEndpoint,
      httpPutResponseHopLimit: metadata.httpPutResponseHopLimit,
      instanceMetadataTags: metadata.instanceMetadataTags,
    },
    tagSpecificationSet: spec.tagSpecifications?.map((tags) => ({ resourceType: tags.resourceType, tagSet: tagSet(tags.tags) })),
    blockDeviceMappingSet: spec.blockDeviceMappings && blockDeviceMappingsXml(spec.blockDeviceMappings),
  };
}

export function requireLaunchField<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new QueryError("MissingParameter", `The request must contain the parameter ${name}`);
  return value;
}

export const blockDeviceMappingsXml = (mappings: BlockDeviceMapping[]): XmlValue =>
  mappings.map(({ deviceName, ebs, noDevice }) => ({
    deviceName,
    noDevice: noDevice ? "" : undefined,
    ebs: ebs && {
      snapshotId: ebs.snapshotId,
      volumeSize: ebs.volumeSize,
      volumeType: ebs.volumeType,
      iops: ebs.iops,
      throughput: ebs.throughput,
      deleteOnTermination: ebs.deleteOnTermination,
      encrypted: ebs.encrypted,
    },
  }));
