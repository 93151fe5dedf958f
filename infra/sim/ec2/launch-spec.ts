/** RunInstances parameters and launch template data share one shape; templates and requests merge field by field. */
import { QueryError, record, records, Repeated, tagParams, text, texts, type Params, type XmlValue } from "../query-protocol.ts";
import type { LaunchSpec, MetadataOptions, TagSpecification } from "./model.ts";
import { tagSet } from "./render.ts";

const defined = <T extends object>(value: T): T => Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as T;

export function tagSpecificationsOf(params: Params): TagSpecification[] {
  return records(params, "TagSpecification").map((spec) => ({ resourceType: text(spec, "ResourceType") ?? "", tags: tagParams(spec, "Tag") }));
}

export function parseLaunchSpec(params: Params): LaunchSpec {
  const metadata = record(params, "MetadataOptions");
  const profile = record(params, "IamInstanceProfile");
  const hopLimit = text(metadata, "HttpPutResponseHopLimit");
  const groups = [...texts(params, "SecurityGroupId"), ...texts(params, "SecurityGroupIds")];
  const tagSpecifications = tagSpecificationsOf(params);
  const primary = records(params, "NetworkInterface").find((nic) => (text(nic, "DeviceIndex") ?? "0") === "0");
  const nicGroups = primary ? texts(primary, "SecurityGroupId") : [];
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
  });
}

/** `override`'s fields win; metadata options merge per option and tag specifications add up. */
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
  };
}

export function requireLaunchField<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new QueryError("MissingParameter", `The request must contain the parameter ${name}`);
  return value;
}
