/** EC2 XML shapes shared by several actions. */
import type { XmlValue } from "../query-protocol.ts";
import { ACCOUNT_ID, STATE_CODES, type Ec2Store, type Instance, type InstanceStateName } from "./model.ts";

export const tagSet = (tags: Record<string, string>): XmlValue => Object.entries(tags).map(([key, value]) => ({ key, value }));

export const stateXml = (state: InstanceStateName): XmlValue => ({ code: STATE_CODES[state], name: state });

export function instanceXml(store: Ec2Store, instance: Instance, region: string): XmlValue {
  const tags = store.tagsOf(instance.id);
  const metadata = instance.metadataOptions;
  const dnsName = `ip-${instance.privateIp.replace(/\./g, "-")}.${region}.compute.internal`;
  const running = instance.state === "pending" || instance.state === "running";
  return {
    instanceId: instance.id,
    imageId: instance.imageId,
    instanceState: stateXml(instance.state),
    privateDnsName: running ? dnsName : "",
    dnsName: "",
    reason: instance.stateReason?.message ?? "",
    amiLaunchIndex: instance.launchIndex,
    instanceType: instance.instanceType,
    launchTime: instance.launchTime.toISOString(),
    placement: { availabilityZone: `${region}a`, tenancy: "default" },
    monitoring: { state: "disabled" },
    privateIpAddress: running ? instance.privateIp : undefined,
    subnetId: instance.subnetId,
    vpcId: instance.vpcId,
    groupSet: instance.securityGroupIds.map((groupId) => ({ groupId, groupName: store.securityGroups.get(groupId)?.name })),
    stateReason: instance.stateReason,
    architecture: "x86_64",
    rootDeviceType: "ebs",
    rootDeviceName: "/dev/xvda",
    virtualizationType: "hvm",
    iamInstanceProfile: instance.iamInstanceProfile?.arn ? { arn: instance.iamInstanceProfile.arn, id: `AIPA${instance.id.slice(2, 18).toUpperCase()}` } : undefined,
    tagSet: Object.keys(tags).length ? tagSet(tags) : undefined,
    metadataOptions: {
      state: "applied",
      httpTokens: metadata.httpTokens,
      httpPutResponseHopLimit: metadata.httpPutResponseHopLimit,
      httpEndpoint: metadata.httpEndpoint,
      instanceMetadataTags: metadata.instanceMetadataTags,
    },
  };
}

export const reservationXml = (reservationId: string, instances: XmlValue[]): XmlValue => ({
  reservationId,
  ownerId: ACCOUNT_ID,
  groupSet: [],
  instancesSet: instances,
});
