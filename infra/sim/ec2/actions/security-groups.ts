/** CreateSecurityGroup, DescribeSecurityGroups, Authorize/RevokeSecurityGroupIngress, DeleteSecurityGroup. */
import { QueryError, records, text, texts, type Params } from "../../query-protocol.ts";
import { requireVisibleGroup } from "../consistency.ts";
import type { Ec2Context, Ec2Handler } from "../context.ts";
import { filtersOf, listedOrAll, matchesFilters, paginate } from "../filters.ts";
import { tagSpecificationsOf } from "../launch-spec.ts";
import { ACCOUNT_ID, type Ec2Store, type IpRule, type SecurityGroup } from "../model.ts";
import { noDefaultVpc } from "./networks.ts";
import { tagSet } from "../render.ts";

/** By id, or by name in the default VPC (as EC2: a name names a group only there). */
function findGroup(store: Ec2Store, id: string | undefined, name: string | undefined): SecurityGroup {
  const defaultVpc = store.defaultVpc()?.id;
  const group =
    id !== undefined ? store.securityGroups.get(id) : [...store.securityGroups.values()].find((candidate) => candidate.name === name && candidate.vpcId === defaultVpc);
  if (!group) throw new QueryError("InvalidGroup.NotFound", `The security group '${id ?? name}' does not exist`);
  return group;
}

const groupOf = (params: Params, context: Ec2Context) => findGroup(context.store, text(params, "GroupId"), text(params, "GroupName"));

/** `IpPermissions.N` or the flat legacy form (`IpProtocol`, `FromPort`, `ToPort`, `CidrIp`). */
function rulesOf(params: Params): IpRule[] {
  const permissions = records(params, "IpPermissions");
  const listed = permissions.length ? permissions : [params];
  return listed.map((permission) => {
    const fromPort = text(permission, "FromPort");
    const toPort = text(permission, "ToPort");
    const cidrs = records(permission, "IpRanges").map((range) => text(range, "CidrIp") ?? "");
    const flat = text(permission, "CidrIp");
    return {
      protocol: text(permission, "IpProtocol") ?? "-1",
      fromPort: fromPort === undefined ? undefined : Number(fromPort),
      toPort: toPort === undefined ? undefined : Number(toPort),
      cidrs: flat ? [...cidrs, flat] : cidrs,
    };
  });
}

const sameRange = (a: IpRule, b: IpRule) => a.protocol === b.protocol && a.fromPort === b.fromPort && a.toPort === b.toPort;

const createSecurityGroup: Ec2Handler = (params, { store }) => {
  const name = text(params, "GroupName") ?? "";
  const vpcId = text(params, "VpcId") ?? store.defaultVpc()?.id;
  if (vpcId === undefined) throw noDefaultVpc(" GroupName is only supported for EC2-Classic and default VPC.");
  if (!store.vpcs.has(vpcId)) throw new QueryError("InvalidVpcID.NotFound", `The vpc ID '${vpcId}' does not exist`);
  if ([...store.securityGroups.values()].some((group) => group.name === name && group.vpcId === vpcId)) {
    throw new QueryError("InvalidGroup.Duplicate", `The security group '${name}' already exists for VPC '${vpcId}'`);
  }
  const group: SecurityGroup = {
    id: store.newId("sg"),
    name,
    description: text(params, "GroupDescription") ?? "",
    vpcId,
    ingress: [],
    createdAt: Date.now(),
  };
  store.securityGroups.set(group.id, group);
  for (const spec of tagSpecificationsOf(params)) if (spec.resourceType === "security-group") store.addTags(group.id, spec.tags);
  return { return: true, groupId: group.id, tagSet: tagSet(store.tagsOf(group.id)) };
};

const describeSecurityGroups: Ec2Handler = (params, { store }) => {
  const candidates = listedOrAll(texts(params, "GroupId"), texts(params, "GroupName"), (id, name) => findGroup(store, id, name), store.securityGroups.values());
  const filters = filtersOf(params);
  const matching = candidates.filter((group) =>
    matchesFilters(filters, { "group-id": group.id, "group-name": group.name, "vpc-id": group.vpcId, description: group.description }, store.tagsOf(group.id)),
  );
  const { page, nextToken } = paginate(matching, params);
  return {
    securityGroupInfo: page.map((group) => ({
      ownerId: ACCOUNT_ID,
      groupId: group.id,
      groupName: group.name,
      groupDescription: group.description,
      vpcId: group.vpcId,
      ipPermissions: group.ingress.map((rule) => ({
        ipProtocol: rule.protocol,
        fromPort: rule.fromPort,
        toPort: rule.toPort,
        groups: [],
        ipRanges: rule.cidrs.map((cidrIp) => ({ cidrIp })),
        ipv6Ranges: [],
        prefixListIds: [],
      })),
      ipPermissionsEgress: [{ ipProtocol: "-1", groups: [], ipRanges: [{ cidrIp: "0.0.0.0/0" }], ipv6Ranges: [], prefixListIds: [] }],
      tagSet: tagSet(store.tagsOf(group.id)),
    })),
    nextToken,
  };
};

const authorizeSecurityGroupIngress: Ec2Handler = (params, context) => {
  const group = requireVisibleGroup(groupOf(params, context), context);
  const rules = rulesOf(params);
  for (const rule of rules) {
    const existing = group.ingress.find((candidate) => sameRange(candidate, rule));
    const duplicate = rule.cidrs.find((cidr) => existing?.cidrs.includes(cidr));
    if (duplicate) {
      throw new QueryError("InvalidPermission.Duplicate", `the specified rule "peer: ${duplicate}, ${rule.protocol.toUpperCase()}, from port: ${rule.fromPort}, to port: ${rule.toPort}, ALLOW" already exists`);
    }
  }
  for (const rule of rules) {
    const existing = group.ingress.find((candidate) => sameRange(candidate, rule));
    if (existing) existing.cidrs.push(...rule.cidrs);
    else group.ingress.push({ ...rule, cidrs: [...rule.cidrs] });
  }
  return {
    return: true,
    securityGroupRuleSet: rules.flatMap((rule) =>
      rule.cidrs.map((cidrIpv4) => ({
        securityGroupRuleId: context.store.newId("sgr"),
        groupId: group.id,
        groupOwnerId: ACCOUNT_ID,
        isEgress: false,
        ipProtocol: rule.protocol,
        fromPort: rule.fromPort,
        toPort: rule.toPort,
        cidrIpv4,
      })),
    ),
  };
};

const revokeSecurityGroupIngress: Ec2Handler = (params, context) => {
  const group = groupOf(params, context);
  for (const rule of rulesOf(params)) {
    const existing = group.ingress.find((candidate) => sameRange(candidate, rule));
    if (!existing || !rule.cidrs.every((cidr) => existing.cidrs.includes(cidr))) {
      throw new QueryError("InvalidPermission.NotFound", "The specified rule does not exist in this security group.");
    }
    existing.cidrs = existing.cidrs.filter((cidr) => !rule.cidrs.includes(cidr));
  }
  group.ingress = group.ingress.filter((rule) => rule.cidrs.length > 0);
  return { return: true };
};

const deleteSecurityGroup: Ec2Handler = (params, context) => {
  const group = groupOf(params, context);
  const user = [...context.store.instances.values()].find((instance) => instance.state !== "terminated" && instance.securityGroupIds.includes(group.id));
  if (user) throw new QueryError("DependencyViolation", `resource ${group.id} has a dependent object (${user.id})`);
  context.store.securityGroups.delete(group.id);
  context.store.tags.delete(group.id);
  return { return: true, groupId: group.id };
};

export const securityGroupActions: Record<string, Ec2Handler> = {
  CreateSecurityGroup: createSecurityGroup,
  DescribeSecurityGroups: describeSecurityGroups,
  AuthorizeSecurityGroupIngress: authorizeSecurityGroupIngress,
  RevokeSecurityGroupIngress: revokeSecurityGroupIngress,
  DeleteSecurityGroup: deleteSecurityGroup,
};
