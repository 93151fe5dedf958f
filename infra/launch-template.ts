/** The deployment's launch template: the settings bootstrap owns, and new default versions (bootstrap, bake-ami). */
import { CreateLaunchTemplateVersionCommand, ModifyLaunchTemplateCommand, type EC2Client, type RequestLaunchTemplateData } from "@aws-sdk/client-ec2";
import { toTagList } from "./aws.ts";
import type { DesiredState } from "./plan.ts";
import type { RootVolume } from "./policies.ts";

/**
 * The root volume of every instance the template launches (app instances, and the web tier and the builder, which
 * launch from it too). 8 GiB: the size of Amazon Linux 2023's root snapshot, which a volume may not be smaller than,
 * and what the baked image keeps (it is a snapshot of the builder's root, launched with this one), the size bake-ami
 * has always built in (the stock image's root). gp3 at its included
 * baseline (3000 IOPS, 125 MiB/s) and stated explicitly: the web role's policy bounds a launch's volumes by these.
 * Encryption is left to the account's EBS encryption by default.
 */
export const ROOT_VOLUME: RootVolume = { deviceName: "/dev/xvda", sizeGiB: 8, type: "gp3", iops: 3000, throughputMiBps: 125 };

/**
 * IMDSv2 only, with instance tags in metadata so that the service reads its Role tag without DescribeTags. The
 * template launches app instances (the controller's and launch's warm pool): it carries the app profile; launch and
 * bake-ami name the web and builder profiles in their own RunInstances.
 * With subnets, the template's network interface is in the first (its VPC may have no default subnet for EC2 to pick);
 * app instances are spread over all of them by replacing it in their RunInstances (launch and the controller).
 */
export function launchTemplateData(desired: DesiredState, securityGroupId: string): RequestLaunchTemplateData {
  const tags = toTagList(desired.tags);
  const subnetId = desired.network?.subnetIds[0];
  return {
    InstanceType: desired.launchTemplate.instanceType as RequestLaunchTemplateData["InstanceType"],
    IamInstanceProfile: { Name: desired.roles.app.profileName },
    ...(subnetId ? { NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: subnetId, Groups: [securityGroupId] }] } : { SecurityGroupIds: [securityGroupId] }),
    BlockDeviceMappings: [rootVolumeMapping(desired.launchTemplate.rootVolume)],
    MetadataOptions: { HttpTokens: "required", HttpEndpoint: "enabled", HttpPutResponseHopLimit: 1, InstanceMetadataTags: "enabled" },
    TagSpecifications: [
      { ResourceType: "instance", Tags: tags },
      { ResourceType: "volume", Tags: tags },
    ],
  };
}

function rootVolumeMapping(volume: RootVolume): NonNullable<RequestLaunchTemplateData["BlockDeviceMappings"]>[number] {
  return {
    DeviceName: volume.deviceName,
    Ebs: { VolumeSize: volume.sizeGiB, VolumeType: volume.type, Iops: volume.iops, Throughput: volume.throughputMiBps, DeleteOnTermination: true },
  };
}

/** A new version based on the default one with `data` overriding it, made the default; returns its number. */
export async function newDefaultVersion(ec2: EC2Client, launchTemplateId: string, data: RequestLaunchTemplateData): Promise<number> {
  const { LaunchTemplateVersion } = await ec2.send(
    new CreateLaunchTemplateVersionCommand({ LaunchTemplateId: launchTemplateId, SourceVersion: "$Default", LaunchTemplateData: data }),
  );
  const version = LaunchTemplateVersion?.VersionNumber;
  if (version === undefined) throw new Error(`launch template ${launchTemplateId}: no version number in the answer`);
  await ec2.send(new ModifyLaunchTemplateCommand({ LaunchTemplateId: launchTemplateId, DefaultVersion: String(version) }));
  return version;
}
