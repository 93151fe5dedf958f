/**
 * DescribeVpcs, DescribeSubnets, CreateVpc, CreateSubnet. An account starts with a default VPC (a default subnet per
 * zone), unless the emulator is told it has none, as organisation accounts often have not.
 */
import { QueryError, text, texts } from "../../query-protocol.ts";
import type { Ec2Handler } from "../context.ts";
import { filtersOf, matchesFilters, paginate } from "../filters.ts";
import { tagSpecificationsOf } from "../launch-spec.ts";
import { ACCOUNT_ID, VPC_ID, type Ec2Store, type Subnet, type Vpc } from "../model.ts";
import { tagSet } from "../render.ts";

/** The default VPC and its two default subnets, as a new account has them. */
export function createDefaultVpc(store: Ec2Store, region: string): void {
  store.vpcs.set(VPC_ID, { id: VPC_ID, cidr: "172.31.0.0/16", isDefault: true });
  ["a", "b"].forEach((zone, index) => {
    const id = store.newId("subnet");
    store.subnets.set(id, { id, vpcId: VPC_ID, cidr: `172.31.${index * 16}.0/20`, availabilityZone: `${region}${zone}`, defaultForAz: true });
  });
}

function byId<T>(resources: Map<string, T>, ids: string[], notFound: string, what: string): T[] {
  return ids.map((id) => {
    const resource = resources.get(id);
    if (!resource) throw new QueryError(notFound, `The ${what} ID '${id}' does not exist`);
    return resource;
  });
}

const vpcXml = (store: Ec2Store, vpc: Vpc) => ({
  vpcId: vpc.id,
  ownerId: ACCOUNT_ID,
  state: "available",
  cidrBlock: vpc.cidr,
  isDefault: vpc.isDefault,
  tagSet: tagSet(store.tagsOf(vpc.id)),
});

const subnetXml = (store: Ec2Store, subnet: Subnet) => ({
  subnetId: subnet.id,
  vpcId: subnet.vpcId,
  ownerId: ACCOUNT_ID,
  state: "available",
  cidrBlock: subnet.cidr,
  availabilityZone: subnet.availabilityZone,
  defaultForAz: subnet.defaultForAz,
  mapPublicIpOnLaunch: subnet.defaultForAz,
  tagSet: tagSet(store.tagsOf(subnet.id)),
});

const describeVpcs: Ec2Handler = (params, { store }) => {
  const ids = texts(params, "VpcId");
  const candidates = ids.length ? byId(store.vpcs, ids, "InvalidVpcID.NotFound", "vpc") : [...store.vpcs.values()];
  const filters = filtersOf(params);
  const matching = candidates.filter((vpc) => matchesFilters(filters, { "vpc-id": vpc.id, "is-default": String(vpc.isDefault), "cidr-block": vpc.cidr }, store.tagsOf(vpc.id)));
  const { page, nextToken } = paginate(matching, params);
  return { vpcSet: page.map((vpc) => vpcXml(store, vpc)), nextToken };
};

const describeSubnets: Ec2Handler = (params, { store }) => {
  const ids = texts(params, "SubnetId");
  const candidates = ids.length ? byId(store.subnets, ids, "InvalidSubnetID.NotFound", "subnet") : [...store.subnets.values()];
  const filters = filtersOf(params);
  const matching = candidates.filter((subnet) =>
    matchesFilters(
      filters,
      { "subnet-id": subnet.id, "vpc-id": subnet.vpcId, "availability-zone": subnet.availabilityZone, "default-for-az": String(subnet.defaultForAz) },
      store.tagsOf(subnet.id),
    ),
  );
  const { page, nextToken } = paginate(matching, params);
  return { subnetSet: page.map((subnet) => subnetXml(store, subnet)), nextToken };
};

const createVpc: Ec2Handler = (params, { store }) => {
  const vpc: Vpc = { id: store.newId("vpc"), cidr: text(params, "CidrBlock") ?? "10.0.0.0/16", isDefault: false };
  store.vpcs.set(vpc.id, vpc);
  for (const spec of tagSpecificationsOf(params)) if (spec.resourceType === "vpc") store.addTags(vpc.id, spec.tags);
  return { vpc: vpcXml(store, vpc) };
};

const createSubnet: Ec2Handler = (params, context) => {
  const { store } = context;
  const [vpc] = byId(store.vpcs, [text(params, "VpcId") ?? ""], "InvalidVpcID.NotFound", "vpc");
  const subnet: Subnet = {
    id: store.newId("subnet"),
    vpcId: vpc!.id,
    cidr: text(params, "CidrBlock") ?? "10.0.0.0/24",
    availabilityZone: text(params, "AvailabilityZone") ?? `${context.region}a`,
    defaultForAz: false,
  };
  store.subnets.set(subnet.id, subnet);
  for (const spec of tagSpecificationsOf(params)) if (spec.resourceType === "subnet") store.addTags(subnet.id, spec.tags);
  return { subnet: subnetXml(store, subnet) };
};

export const networkActions: Record<string, Ec2Handler> = {
  DescribeVpcs: describeVpcs,
  DescribeSubnets: describeSubnets,
  CreateVpc: createVpc,
  CreateSubnet: createSubnet,
};

/** "No default VPC for this user": what EC2 answers a call that needs one in an account without it. */
export const noDefaultVpc = (detail = "") => new QueryError("VPCIdNotSpecified", `No default VPC for this user.${detail}`);
