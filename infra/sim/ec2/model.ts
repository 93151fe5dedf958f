/** What the EC2 emulator keeps: VPCs and subnets, instances, images, security groups, launch templates, and tags on all of them. */
export type InstanceStateName = "pending" | "running" | "stopping" | "stopped" | "shutting-down" | "terminated";

export const STATE_CODES: Record<InstanceStateName, number> = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

export interface MetadataOptions {
  httpTokens: string;
  httpEndpoint: string;
  httpPutResponseHopLimit: number;
  instanceMetadataTags: string;
}

export interface TagSpecification {
  resourceType: string;
  tags: Record<string, string>;
}

/** An EBS volume's settings in a block device mapping; a field left out is the AMI's (or EC2's default). */
export interface EbsSpec {
  volumeSize?: number;
  volumeType?: string;
  iops?: number;
  throughput?: number;
  deleteOnTermination?: boolean;
  encrypted?: boolean;
  snapshotId?: string;
}

/** One device of a block device mapping: an EBS volume, or `noDevice` to drop the AMI's mapping of that name. */
export interface BlockDeviceMapping {
  deviceName: string;
  ebs?: EbsSpec;
  noDevice?: boolean;
}

/** Every image here boots from this device, as Amazon Linux 2023's do. */
export const ROOT_DEVICE_NAME = "/dev/xvda";

/** An Amazon Linux 2023 image's: an 8 GiB gp3 root volume from its snapshot, deleted with the instance. */
export const STOCK_IMAGE_MAPPINGS: BlockDeviceMapping[] = [
  { deviceName: ROOT_DEVICE_NAME, ebs: { snapshotId: "snap-0stockimage000000", volumeSize: 8, volumeType: "gp3", iops: 3000, throughput: 125, deleteOnTermination: true, encrypted: false } },
];

/** The launch settings RunInstances takes directly and a launch template version holds. */
export interface LaunchSpec {
  imageId?: string;
  instanceType?: string;
  userData?: string;
  metadataOptions?: Partial<MetadataOptions>;
  iamInstanceProfile?: { arn?: string; name?: string };
  securityGroupIds?: string[];
  subnetId?: string;
  /** The primary network interface (device 0): its subnet and groups, instead of SubnetId and SecurityGroupIds. */
  networkInterface?: { subnetId?: string; groupIds?: string[] };
  tagSpecifications?: TagSpecification[];
  instanceInitiatedShutdownBehavior?: string;
  /** `Placement.Tenancy`: default, dedicated or host. */
  tenancy?: string;
  blockDeviceMappings?: BlockDeviceMapping[];
}

export interface Instance {
  id: string;
  reservationId: string;
  launchIndex: number;
  imageId: string;
  instanceType: string;
  launchTime: Date;
  state: InstanceStateName;
  stateReason?: { code: string; message: string };
  userData?: string;
  metadataOptions: MetadataOptions;
  iamInstanceProfile?: { arn?: string; name?: string };
  securityGroupIds: string[];
  subnetId: string;
  vpcId: string;
  shutdownBehavior: "stop" | "terminate";
  privateIp: string;
  launchTemplate?: { id: string; version: number };
  /** The EBS volumes it was launched with, by device: the AMI's mapping under the template's and the caller's. */
  volumes: BlockDeviceMapping[];
}

export interface Image {
  id: string;
  name: string;
  description?: string;
  state: "pending" | "available";
  creationDate: Date;
  sourceInstanceId?: string;
  /** The image's files, its snapshot: the root volume directory of the instance it was made from. Stock images have none. */
  rootDir?: string;
  /** Its block device mapping: the root volume's snapshot, size and type; undefined: a stock image's (STOCK_IMAGE_MAPPINGS). */
  blockDeviceMappings?: BlockDeviceMapping[];
}

export interface IpRule {
  protocol: string;
  fromPort?: number;
  toPort?: number;
  cidrs: string[];
}

export interface SecurityGroup {
  id: string;
  name: string;
  description: string;
  vpcId: string;
  ingress: IpRule[];
  /** ms since the epoch. */
  createdAt: number;
}

export interface Vpc {
  id: string;
  cidr: string;
  isDefault: boolean;
}

export interface Subnet {
  id: string;
  vpcId: string;
  cidr: string;
  availabilityZone: string;
  /** A default VPC's subnets are each their zone's default. */
  defaultForAz: boolean;
}

export interface LaunchTemplate {
  id: string;
  name: string;
  createTime: Date;
  defaultVersion: number;
  versions: Map<number, { spec: LaunchSpec; description?: string; createTime: Date }>;
}

export const ACCOUNT_ID = "123456789012";
export const VPC_ID = "vpc-0emulated0000000";

export class Ec2Store {
  readonly vpcs = new Map<string, Vpc>();
  readonly subnets = new Map<string, Subnet>();
  readonly instances = new Map<string, Instance>();
  readonly images = new Map<string, Image>();
  readonly securityGroups = new Map<string, SecurityGroup>();
  readonly launchTemplates = new Map<string, LaunchTemplate>();
  /** Tags by resource id, for every kind of resource. */
  readonly tags = new Map<string, Map<string, string>>();
  private serial = 0;

  newId(prefix: string): string {
    this.serial += 1;
    return `${prefix}-${this.serial.toString(16).padStart(17, "0")}`;
  }

  tagsOf(resourceId: string): Record<string, string> {
    return Object.fromEntries(this.tags.get(resourceId) ?? []);
  }

  addTags(resourceId: string, tags: Record<string, string>): void {
    const current = this.tags.get(resourceId) ?? new Map<string, string>();
    for (const [key, value] of Object.entries(tags)) current.set(key, value);
    this.tags.set(resourceId, current);
  }

  /** Deletes the named tags (only where the value matches, when one is given), or all when none are named. */
  removeTags(resourceId: string, tags: { key: string; value?: string }[]): void {
    const current = this.tags.get(resourceId);
    if (!current) return;
    if (tags.length === 0) current.clear();
    for (const { key, value } of tags) if (value === undefined || current.get(key) === value) current.delete(key);
  }

  resourceExists(resourceId: string): boolean {
    return [this.vpcs, this.subnets, this.instances, this.images, this.securityGroups, this.launchTemplates].some((resources) => resources.has(resourceId));
  }

  defaultVpc(): Vpc | undefined {
    return [...this.vpcs.values()].find((vpc) => vpc.isDefault);
  }
}

const RESOURCE_TYPES: Record<string, string> = { vpc: "vpc", subnet: "subnet", i: "instance", ami: "image", sg: "security-group", lt: "launch-template" };

export const resourceTypeOf = (resourceId: string) => RESOURCE_TYPES[resourceId.split("-")[0] ?? ""] ?? "unknown";
