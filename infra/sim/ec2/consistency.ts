/**
 * EC2 right after a create, as AWS documents it: a new security group may be NotFound to the next calls that name it
 * (AuthorizeSecurityGroupIngress, CreateTags), and a new IAM instance profile is not usable by RunInstances or
 * CreateLaunchTemplate for some seconds ("Invalid IAM Instance Profile name"). The windows are the context's lags.
 */
import { QueryError } from "../query-protocol.ts";
import type { Ec2Context } from "./context.ts";
import type { LaunchSpec, SecurityGroup } from "./model.ts";

export function requireVisibleGroup(group: SecurityGroup, context: Ec2Context): SecurityGroup {
  if (Date.now() - group.createdAt < context.securityGroupLagMs) throw new QueryError("InvalidGroup.NotFound", `The security group '${group.id}' does not exist`);
  return group;
}

/** When the region tells profile creation times, a profile EC2 cannot use yet (or that does not exist) is refused. */
export function requireUsableProfile(spec: LaunchSpec, context: Ec2Context): void {
  const profile = spec.iamInstanceProfile;
  if (!profile || !context.instanceProfileCreatedAt) return;
  const name = profile.name ?? profile.arn?.split("/").pop() ?? "";
  const createdAt = context.instanceProfileCreatedAt(name);
  if (createdAt === undefined || Date.now() - createdAt < context.instanceProfileLagMs) {
    throw new QueryError("InvalidParameterValue", `Value (${name}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name`);
  }
}
