/** The IAM actions the infra scripts make: roles, inline and attached role policies, instance profiles, tags. */
import { QueryError, tagParams, text, texts, type Params, type XmlValue } from "../query-protocol.ts";
import { instanceProfileArn, roleArn, type IamStore, type InstanceProfile, type Role } from "./model.ts";

/** An AWS managed policy (`arn:aws:iam::aws:policy/...`) or one of an account. */
const MANAGED_POLICY_ARN = /^arn:aws:iam::(aws|\d{12}):policy\/[\w+=,.@\/-]+$/;

export type IamHandler = (params: Params, store: IamStore) => XmlValue;

const noSuchEntity = (kind: string, name: string) => new QueryError("NoSuchEntity", `The ${kind} with name ${name} cannot be found.`, 404);

function required(params: Params, name: string): string {
  const value = text(params, name);
  if (value === undefined || value === "") throw new QueryError("ValidationError", `1 validation error detected: Value null at '${name}' failed to satisfy constraint: Member must not be null`);
  return value;
}

function roleOf(params: Params, store: IamStore): Role {
  const name = required(params, "RoleName");
  const role = store.roles.get(name);
  if (!role) throw noSuchEntity("role", name);
  return role;
}

function profileOf(params: Params, store: IamStore): InstanceProfile {
  const name = required(params, "InstanceProfileName");
  const profile = store.instanceProfiles.get(name);
  if (!profile) throw noSuchEntity("instance profile", name);
  return profile;
}

function policyDocument(params: Params, name: string): string {
  const document = required(params, name);
  try {
    JSON.parse(document);
  } catch {
    throw new QueryError("MalformedPolicyDocument", "This policy contains invalid Json");
  }
  return document;
}

const tagsXml = (tags: Map<string, string>): XmlValue => [...tags].map(([Key, Value]) => ({ Key, Value }));

const roleXml = (role: Role): XmlValue => ({
  Path: role.path,
  RoleName: role.name,
  RoleId: role.id,
  Arn: roleArn(role),
  CreateDate: role.createDate.toISOString(),
  AssumeRolePolicyDocument: encodeURIComponent(role.assumeRolePolicyDocument),
  Description: role.description,
  MaxSessionDuration: 3600,
  Tags: role.tags.size ? tagsXml(role.tags) : undefined,
});

const profileXml = (profile: InstanceProfile, store: IamStore): XmlValue => ({
  Path: profile.path,
  InstanceProfileName: profile.name,
  InstanceProfileId: profile.id,
  Arn: instanceProfileArn(profile),
  CreateDate: profile.createDate.toISOString(),
  Roles: profile.roleNames.map((name) => roleXml(store.roles.get(name)!)),
  Tags: profile.tags.size ? tagsXml(profile.tags) : undefined,
});

const addTags = (tags: Map<string, string>, params: Params) => {
  for (const [key, value] of Object.entries(tagParams(params, "Tags"))) tags.set(key, value);
};

export const iamActions: Record<string, IamHandler> = {
  CreateRole(params, store) {
    const name = required(params, "RoleName");
    if (store.roles.has(name)) throw new QueryError("EntityAlreadyExists", `Role with name ${name} already exists.`, 409);
    const role: Role = {
      name,
      id: store.newId("AROA"),
      path: text(params, "Path") ?? "/",
      createDate: new Date(),
      description: text(params, "Description"),
      assumeRolePolicyDocument: policyDocument(params, "AssumeRolePolicyDocument"),
      policies: new Map(),
      attachedPolicies: new Set(),
      tags: new Map(),
    };
    addTags(role.tags, params);
    store.roles.set(name, role);
    return { Role: roleXml(role) };
  },
  GetRole: (params, store) => ({ Role: roleXml(roleOf(params, store)) }),
  UpdateAssumeRolePolicy(params, store) {
    roleOf(params, store).assumeRolePolicyDocument = policyDocument(params, "PolicyDocument");
    return {};
  },
  DeleteRole(params, store) {
    const role = roleOf(params, store);
    if (role.policies.size) throw new QueryError("DeleteConflict", "Cannot delete entity, must delete policies first.", 409);
    if (role.attachedPolicies.size) throw new QueryError("DeleteConflict", "Cannot delete entity, must detach all policies first.", 409);
    if ([...store.instanceProfiles.values()].some((profile) => profile.roleNames.includes(role.name))) {
      throw new QueryError("DeleteConflict", "Cannot delete entity, must remove roles from instance profile first.", 409);
    }
    store.roles.delete(role.name);
    return {};
  },
  PutRolePolicy(params, store) {
    store.putRolePolicy(roleOf(params, store), required(params, "PolicyName"), policyDocument(params, "PolicyDocument"));
    return {};
  },
  AttachRolePolicy(params, store) {
    const role = roleOf(params, store);
    const arn = required(params, "PolicyArn");
    if (!MANAGED_POLICY_ARN.test(arn)) throw new QueryError("InvalidInput", `ARN ${arn} is not valid.`);
    role.attachedPolicies.add(arn);
    return {};
  },
  DetachRolePolicy(params, store) {
    const arn = required(params, "PolicyArn");
    if (!roleOf(params, store).attachedPolicies.delete(arn)) throw new QueryError("NoSuchEntity", `Policy ${arn} was not found.`, 404);
    return {};
  },
  ListAttachedRolePolicies: (params, store) => ({
    AttachedPolicies: [...roleOf(params, store).attachedPolicies].map((arn) => ({ PolicyName: arn.split("/").pop(), PolicyArn: arn })),
    IsTruncated: false,
  }),
  GetRolePolicy(params, store) {
    const role = roleOf(params, store);
    const name = required(params, "PolicyName");
    const document = role.policies.get(name);
    if (document === undefined) throw new QueryError("NoSuchEntity", `The role policy with name ${name} cannot be found.`, 404);
    return { RoleName: role.name, PolicyName: name, PolicyDocument: encodeURIComponent(document) };
  },
  ListRolePolicies: (params, store) => ({ PolicyNames: [...roleOf(params, store).policies.keys()], IsTruncated: false }),
  DeleteRolePolicy(params, store) {
    const name = required(params, "PolicyName");
    if (!roleOf(params, store).policies.delete(name)) throw new QueryError("NoSuchEntity", `The role policy with name ${name} cannot be found.`, 404);
    return {};
  },
  TagRole(params, store) {
    addTags(roleOf(params, store).tags, params);
    return {};
  },
  UntagRole(params, store) {
    const role = roleOf(params, store);
    for (const key of texts(params, "TagKeys")) role.tags.delete(key);
    return {};
  },
  ListRoleTags: (params, store) => ({ Tags: tagsXml(roleOf(params, store).tags), IsTruncated: false }),
  CreateInstanceProfile(params, store) {
    const name = required(params, "InstanceProfileName");
    if (store.instanceProfiles.has(name)) throw new QueryError("EntityAlreadyExists", `Instance Profile ${name} already exists.`, 409);
    const profile: InstanceProfile = { name, id: store.newId("AIPA"), path: text(params, "Path") ?? "/", createDate: new Date(), roleNames: [], tags: new Map() };
    addTags(profile.tags, params);
    store.instanceProfiles.set(name, profile);
    return { InstanceProfile: profileXml(profile, store) };
  },
  GetInstanceProfile: (params, store) => ({ InstanceProfile: profileXml(profileOf(params, store), store) }),
  AddRoleToInstanceProfile(params, store) {
    const profile = profileOf(params, store);
    const role = roleOf(params, store);
    if (profile.roleNames.length) throw new QueryError("LimitExceeded", "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1", 409);
    profile.roleNames.push(role.name);
    return {};
  },
  RemoveRoleFromInstanceProfile(params, store) {
    const profile = profileOf(params, store);
    const role = roleOf(params, store);
    if (!profile.roleNames.includes(role.name)) throw noSuchEntity("role", role.name);
    profile.roleNames = profile.roleNames.filter((name) => name !== role.name);
    return {};
  },
  DeleteInstanceProfile(params, store) {
    const profile = profileOf(params, store);
    if (profile.roleNames.length) throw new QueryError("DeleteConflict", "Cannot delete entity, must remove roles from instance profile first.", 409);
    store.instanceProfiles.delete(profile.name);
    return {};
  },
  TagInstanceProfile(params, store) {
    addTags(profileOf(params, store).tags, params);
    return {};
  },
  ListInstanceProfileTags: (params, store) => ({ Tags: tagsXml(profileOf(params, store).tags), IsTruncated: false }),
};
