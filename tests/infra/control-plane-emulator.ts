/**
 * The EC2 and IAM control-plane calls that infra/ makes, over their real Query protocols (form-encoded requests,
 * XML answers the SDK parses), in memory on loopback. Instances here are records only: they change state at once
 * and run nothing. It stands in until the emulated region in tests/support/ (whose EC2 runs real instance
 * processes) serves these calls; then these tests should move onto it.
 */
type Params = Record<string, unknown>;
type Xml = string | number | boolean | undefined | Xml[] | { [name: string]: Xml };
type Tags = Record<string, string>;

class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly status = 400) {
    super(message);
  }
}

/** `TagSpecification.1.Tag.2.Key=v` (EC2) or `Tags.member.2.Key=v` (IAM) -> { TagSpecification: [{ Tag: [, { Key: "v" }] }] }. */
function parseParams(body: string): Params {
  const root: Params = {};
  for (const [key, value] of new URLSearchParams(body)) {
    const path = key.split(".").filter((segment) => segment !== "member");
    let node: Record<string, unknown> = root;
    path.forEach((segment, index) => {
      const slot = /^\d+$/.test(segment) ? String(Number(segment) - 1) : segment;
      if (index === path.length - 1) {
        node[slot] = value;
        return;
      }
      const nextIsIndex = /^\d+$/.test(path[index + 1]!);
      node[slot] ??= nextIsIndex ? [] : {};
      node = node[slot] as Record<string, unknown>;
    });
  }
  return root;
}

const list = (value: unknown): Params[] => (Array.isArray(value) ? value.filter(Boolean) : []) as Params[];
const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((item) => typeof item === "string") : []);
const escape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function toXml(name: string, value: Xml, itemName: string): string {
  if (value === undefined) return "";
  if (Array.isArray(value)) return `<${name}>${value.map((item) => toXml(itemName, item, itemName)).join("")}</${name}>`;
  if (typeof value === "object") return `<${name}>${Object.entries(value).map(([key, inner]) => toXml(key, inner, itemName)).join("")}</${name}>`;
  return `<${name}>${escape(String(value))}</${name}>`;
}

const xmlResponse = (body: string, status = 200) => new Response(`<?xml version="1.0" encoding="UTF-8"?>${body}`, { status, headers: { "content-type": "text/xml" } });

function tagsFrom(params: unknown): Tags {
  return Object.fromEntries(list(params).map((tag) => [String(tag.Key), String(tag.Value ?? "")]));
}

/** Tags that a TagSpecification list puts on the given resource type. */
function specifiedTags(specifications: unknown, resourceType: string): Tags {
  return Object.assign({}, ...list(specifications).filter((spec) => spec.ResourceType === resourceType).map((spec) => tagsFrom(spec.Tag)));
}

const tagSet = (tags: Tags): Xml => Object.entries(tags).map(([key, value]) => ({ key, value }));

/** EC2 filters: tag:<key>, tag-key, and named fields. */
function matches(filters: unknown, fields: Record<string, string | undefined>, tags: Tags): boolean {
  return list(filters).every((filter) => {
    const name = String(filter.Name);
    const wanted = strings(filter.Value);
    const actual = name.startsWith("tag:") ? tags[name.slice(4)] : fields[name];
    return actual !== undefined && wanted.includes(actual);
  });
}

interface SecurityGroup {
  id: string;
  name: string;
  description: string;
  rules: { protocol: string; from: number; to: number; cidr: string }[];
  tags: Tags;
}

interface LaunchTemplate {
  id: string;
  name: string;
  versions: Params[];
  defaultVersion: number;
  tags: Tags;
}

interface Instance {
  id: string;
  imageId: string;
  instanceType: string;
  state: string;
  tags: Tags;
  launchTemplateId?: string;
  userData?: string;
}

interface Image {
  id: string;
  name: string;
  state: string;
  tags: Tags;
}

export interface ControlPlaneState {
  securityGroups: Map<string, SecurityGroup>;
  launchTemplates: Map<string, LaunchTemplate>;
  instances: Map<string, Instance>;
  images: Map<string, Image>;
  roles: Map<string, { arn: string; trust: string; policies: Map<string, string>; tags: Tags }>;
  profiles: Map<string, { arn: string; roles: string[]; tags: Tags }>;
}

const ACCOUNT = "000000000000";
let nextId = 1;
const newId = (prefix: string) => `${prefix}-${(nextId++).toString(16).padStart(17, "0")}`;

function launchTemplateDataXml(data: Params): Xml {
  const metadata = (data.MetadataOptions ?? {}) as Params;
  const profile = (data.IamInstanceProfile ?? {}) as Params;
  return {
    imageId: data.ImageId as string | undefined,
    instanceType: data.InstanceType as string | undefined,
    iamInstanceProfile: profile.Name ? { name: profile.Name as string } : undefined,
    securityGroupIdSet: strings(data.SecurityGroupId),
    metadataOptions: { httpTokens: metadata.HttpTokens as string, httpEndpoint: metadata.HttpEndpoint as string, instanceMetadataTags: metadata.InstanceMetadataTags as string },
    tagSpecificationSet: list(data.TagSpecification).map((spec) => ({ resourceType: spec.ResourceType as string, tagSet: tagSet(tagsFrom(spec.Tag)) })),
  };
}

function ec2(state: ControlPlaneState, action: string, p: Params): Xml {
  const group = (id: unknown) => {
    const found = state.securityGroups.get(String(id));
    if (!found) throw new ApiError("InvalidGroup.NotFound", `The security group '${id}' does not exist`);
    return found;
  };
  const template = (p: Params) => {
    const found = [...state.launchTemplates.values()].find((t) => t.id === p.LaunchTemplateId || t.name === p.LaunchTemplateName);
    if (!found) throw new ApiError("InvalidLaunchTemplateId.NotFound", "launch template not found");
    return found;
  };
  const rules = (permissions: unknown) =>
    list(permissions).flatMap((permission) =>
      list(permission.IpRanges).map((range) => ({ protocol: String(permission.IpProtocol), from: Number(permission.FromPort), to: Number(permission.ToPort), cidr: String(range.CidrIp) })),
    );
  const instancesXml = (instances: Instance[]) =>
    instances.map((i) => ({
      instanceId: i.id,
      imageId: i.imageId,
      instanceType: i.instanceType,
      instanceState: { code: 0, name: i.state },
      privateIpAddress: "127.0.0.1",
      tagSet: tagSet(i.tags),
    }));
  const setState = (ids: string[], to: string) =>
    ids.map((id) => {
      const instance = state.instances.get(id);
      if (!instance) throw new ApiError("InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
      const previous = instance.state;
      if (previous !== "terminated") instance.state = to;
      return { instanceId: id, previousState: { code: 0, name: previous }, currentState: { code: 0, name: instance.state } };
    });

  switch (action) {
    case "CreateSecurityGroup": {
      if ([...state.securityGroups.values()].some((g) => g.name === p.GroupName)) throw new ApiError("InvalidGroup.Duplicate", `group ${p.GroupName} exists`);
      const id = newId("sg");
      state.securityGroups.set(id, { id, name: String(p.GroupName), description: String(p.GroupDescription), rules: [], tags: specifiedTags(p.TagSpecification, "security-group") });
      return { groupId: id };
    }
    case "DescribeSecurityGroups":
      return {
        securityGroupInfo: [...state.securityGroups.values()]
          .filter((g) => matches(p.Filter, { "group-name": g.name, "group-id": g.id }, g.tags))
          .map((g) => ({
            groupId: g.id,
            groupName: g.name,
            groupDescription: g.description,
            ipPermissions: g.rules.map((r) => ({ ipProtocol: r.protocol, fromPort: r.from, toPort: r.to, ipRanges: [{ cidrIp: r.cidr }] })),
            tagSet: tagSet(g.tags),
          })),
      };
    case "AuthorizeSecurityGroupIngress":
      group(p.GroupId).rules.push(...rules(p.IpPermissions));
      return { return: true };
    case "RevokeSecurityGroupIngress": {
      const target = group(p.GroupId);
      const revoked = rules(p.IpPermissions);
      target.rules = target.rules.filter((r) => !revoked.some((x) => x.protocol === r.protocol && x.from === r.from && x.to === r.to && x.cidr === r.cidr));
      return { return: true };
    }
    case "DeleteSecurityGroup": {
      const target = group(p.GroupId);
      const inUse = [...state.instances.values()].some(
        (i) => i.state !== "terminated" && i.launchTemplateId && strings(state.launchTemplates.get(i.launchTemplateId)?.versions.at(-1)?.SecurityGroupId).includes(target.id),
      );
      if (inUse) throw new ApiError("DependencyViolation", `resource ${target.id} has a dependent object`);
      state.securityGroups.delete(target.id);
      return { return: true };
    }
    case "CreateTags": {
      const tags = tagsFrom(p.Tag);
      for (const id of strings(p.ResourceId)) {
        const resource = state.securityGroups.get(id) ?? state.instances.get(id) ?? state.images.get(id) ?? [...state.launchTemplates.values()].find((t) => t.id === id);
        if (!resource) throw new ApiError("InvalidID", `The ID '${id}' is not valid`);
        Object.assign(resource.tags, tags);
      }
      return { return: true };
    }
    case "CreateLaunchTemplate": {
      if ([...state.launchTemplates.values()].some((t) => t.name === p.LaunchTemplateName)) {
        throw new ApiError("InvalidLaunchTemplateName.AlreadyExistsException", "already exists");
      }
      const id = newId("lt");
      const created = { id, name: String(p.LaunchTemplateName), versions: [(p.LaunchTemplateData ?? {}) as Params], defaultVersion: 1, tags: specifiedTags(p.TagSpecification, "launch-template") };
      state.launchTemplates.set(id, created);
      return { launchTemplate: { launchTemplateId: id, launchTemplateName: created.name, defaultVersionNumber: 1, latestVersionNumber: 1 } };
    }
    case "DescribeLaunchTemplates": {
      const names = strings(p.LaunchTemplateName);
      const found = [...state.launchTemplates.values()].filter((t) => (names.length === 0 || names.includes(t.name)) && matches(p.Filter, { "launch-template-name": t.name }, t.tags));
      if (names.length > 0 && found.length === 0) throw new ApiError("InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist.");
      return {
        launchTemplates: found.map((t) => ({ launchTemplateId: t.id, launchTemplateName: t.name, defaultVersionNumber: t.defaultVersion, latestVersionNumber: t.versions.length, tagSet: tagSet(t.tags) })),
      };
    }
    case "DescribeLaunchTemplateVersions": {
      const t = template(p);
      const wanted = strings(p.LaunchTemplateVersion).map((v) => (v === "$Default" ? t.defaultVersion : v === "$Latest" ? t.versions.length : Number(v)));
      return {
        launchTemplateVersionSet: wanted.map((version) => ({
          launchTemplateId: t.id,
          launchTemplateName: t.name,
          versionNumber: version,
          defaultVersion: version === t.defaultVersion,
          launchTemplateData: launchTemplateDataXml(t.versions[version - 1] ?? {}),
        })),
      };
    }
    case "CreateLaunchTemplateVersion": {
      const t = template(p);
      const source = p.SourceVersion === "$Default" ? t.versions[t.defaultVersion - 1] : {};
      t.versions.push({ ...source, ...((p.LaunchTemplateData ?? {}) as Params) });
      return { launchTemplateVersion: { launchTemplateId: t.id, versionNumber: t.versions.length } };
    }
    case "ModifyLaunchTemplate": {
      const t = template(p);
      t.defaultVersion = Number(p.SetDefaultVersion);
      return { launchTemplate: { launchTemplateId: t.id, defaultVersionNumber: t.defaultVersion } };
    }
    case "DeleteLaunchTemplate": {
      const t = template(p);
      state.launchTemplates.delete(t.id);
      return { launchTemplate: { launchTemplateId: t.id } };
    }
    case "RunInstances": {
      const reference = p.LaunchTemplate as Params | undefined;
      const t = reference ? template(reference) : undefined;
      const data = t ? (t.versions[t.defaultVersion - 1] ?? {}) : {};
      const imageId = String(p.ImageId ?? data.ImageId ?? "");
      if (!imageId) throw new ApiError("MissingParameter", "The request must contain the parameter ImageId");
      const tags = { ...specifiedTags(data.TagSpecification, "instance"), ...specifiedTags(p.TagSpecification, "instance") };
      const launched = Array.from({ length: Number(p.MinCount) }, () => {
        const instance: Instance = { id: newId("i"), imageId, instanceType: String(p.InstanceType ?? data.InstanceType ?? "t3.micro"), state: "running", tags: { ...tags }, launchTemplateId: t?.id };
        if (typeof p.UserData === "string") instance.userData = Buffer.from(p.UserData, "base64").toString("utf8");
        state.instances.set(instance.id, instance);
        return instance;
      });
      return { reservationId: newId("r"), ownerId: ACCOUNT, instancesSet: instancesXml(launched) };
    }
    case "DescribeInstances": {
      const ids = strings(p.InstanceId);
      const found = [...state.instances.values()].filter(
        (i) => (ids.length === 0 || ids.includes(i.id)) && matches(p.Filter, { "instance-state-name": i.state, "instance-id": i.id }, i.tags),
      );
      return { reservationSet: found.length === 0 ? [] : [{ reservationId: "r-emulated", ownerId: ACCOUNT, instancesSet: instancesXml(found) }] };
    }
    case "StartInstances":
      return { instancesSet: setState(strings(p.InstanceId), "running") };
    case "StopInstances":
      return { instancesSet: setState(strings(p.InstanceId), "stopped") };
    case "TerminateInstances":
      return { instancesSet: setState(strings(p.InstanceId), "terminated") };
    case "CreateImage": {
      if (!state.instances.has(String(p.InstanceId))) throw new ApiError("InvalidInstanceID.NotFound", "no such instance");
      const id = newId("ami");
      state.images.set(id, { id, name: String(p.Name), state: "available", tags: specifiedTags(p.TagSpecification, "image") });
      return { imageId: id };
    }
    case "DescribeImages": {
      const ids = strings(p.ImageId);
      return {
        imagesSet: [...state.images.values()]
          .filter((image) => (ids.length === 0 || ids.includes(image.id)) && matches(p.Filter, { name: image.name }, image.tags))
          .map((image) => ({ imageId: image.id, name: image.name, imageState: image.state, imageOwnerId: ACCOUNT, tagSet: tagSet(image.tags) })),
      };
    }
    case "DeregisterImage":
      if (!state.images.delete(String(p.ImageId))) throw new ApiError("InvalidAMIID.NotFound", "no such image");
      return { return: true };
  }
  throw new ApiError("InvalidAction", `The action ${action} is not valid for this web service.`);
}

function iam(state: ControlPlaneState, action: string, p: Params): Xml {
  const roleNamed = (name: unknown) => {
    const role = state.roles.get(String(name));
    if (!role) throw new ApiError("NoSuchEntity", `The role with name ${name} cannot be found.`, 404);
    return role;
  };
  const profileNamed = (name: unknown) => {
    const profile = state.profiles.get(String(name));
    if (!profile) throw new ApiError("NoSuchEntity", `Instance Profile ${name} cannot be found.`, 404);
    return profile;
  };
  const roleXml = (name: string) => {
    const role = roleNamed(name);
    return { RoleName: name, RoleId: `AROA${name}`, Arn: role.arn, Path: "/", CreateDate: new Date().toISOString(), AssumeRolePolicyDocument: encodeURIComponent(role.trust), Tags: iamTags(role.tags) };
  };
  const profileXml = (name: string) => {
    const profile = profileNamed(name);
    return { InstanceProfileName: name, InstanceProfileId: `AIPA${name}`, Arn: profile.arn, Path: "/", CreateDate: new Date().toISOString(), Roles: profile.roles.map(roleXml), Tags: iamTags(profile.tags) };
  };
  const iamTags = (tags: Tags): Xml => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

  switch (action) {
    case "CreateRole": {
      const name = String(p.RoleName);
      if (state.roles.has(name)) throw new ApiError("EntityAlreadyExists", `Role with name ${name} already exists.`, 409);
      state.roles.set(name, { arn: `arn:aws:iam::${ACCOUNT}:role/${name}`, trust: String(p.AssumeRolePolicyDocument), policies: new Map(), tags: tagsFrom(p.Tags) });
      return { Role: roleXml(name) };
    }
    case "GetRole":
      return { Role: roleXml(String(p.RoleName)) };
    case "UpdateAssumeRolePolicy":
      roleNamed(p.RoleName).trust = String(p.PolicyDocument);
      return {};
    case "PutRolePolicy":
      roleNamed(p.RoleName).policies.set(String(p.PolicyName), String(p.PolicyDocument));
      return {};
    case "GetRolePolicy": {
      const document = roleNamed(p.RoleName).policies.get(String(p.PolicyName));
      if (document === undefined) throw new ApiError("NoSuchEntity", `The role policy with name ${p.PolicyName} cannot be found.`, 404);
      return { RoleName: String(p.RoleName), PolicyName: String(p.PolicyName), PolicyDocument: encodeURIComponent(document) };
    }
    case "ListRolePolicies":
      return { PolicyNames: [...roleNamed(p.RoleName).policies.keys()], IsTruncated: false };
    case "DeleteRolePolicy":
      roleNamed(p.RoleName).policies.delete(String(p.PolicyName));
      return {};
    case "DeleteRole": {
      const role = roleNamed(p.RoleName);
      if (role.policies.size > 0) throw new ApiError("DeleteConflict", "Cannot delete entity, must delete policies first.", 409);
      if ([...state.profiles.values()].some((profile) => profile.roles.includes(String(p.RoleName)))) {
        throw new ApiError("DeleteConflict", "Cannot delete entity, must remove roles from instance profile first.", 409);
      }
      state.roles.delete(String(p.RoleName));
      return {};
    }
    case "TagRole":
      Object.assign(roleNamed(p.RoleName).tags, tagsFrom(p.Tags));
      return {};
    case "CreateInstanceProfile": {
      const name = String(p.InstanceProfileName);
      if (state.profiles.has(name)) throw new ApiError("EntityAlreadyExists", `Instance Profile ${name} already exists.`, 409);
      state.profiles.set(name, { arn: `arn:aws:iam::${ACCOUNT}:instance-profile/${name}`, roles: [], tags: tagsFrom(p.Tags) });
      return { InstanceProfile: profileXml(name) };
    }
    case "GetInstanceProfile":
      return { InstanceProfile: profileXml(String(p.InstanceProfileName)) };
    case "AddRoleToInstanceProfile": {
      const profile = profileNamed(p.InstanceProfileName);
      roleNamed(p.RoleName);
      if (profile.roles.length > 0) throw new ApiError("LimitExceeded", "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1", 409);
      profile.roles.push(String(p.RoleName));
      return {};
    }
    case "RemoveRoleFromInstanceProfile": {
      const profile = profileNamed(p.InstanceProfileName);
      profile.roles = profile.roles.filter((role) => role !== p.RoleName);
      return {};
    }
    case "DeleteInstanceProfile": {
      if (profileNamed(p.InstanceProfileName).roles.length > 0) throw new ApiError("DeleteConflict", "Cannot delete entity, must remove roles from instance profile first.", 409);
      state.profiles.delete(String(p.InstanceProfileName));
      return {};
    }
    case "TagInstanceProfile":
      Object.assign(profileNamed(p.InstanceProfileName).tags, tagsFrom(p.Tags));
      return {};
  }
  throw new ApiError("InvalidAction", `Could not find operation ${action}`);
}

export interface ControlPlaneEmulator {
  /** For AWS_ENDPOINT_URL_EC2 and AWS_ENDPOINT_URL_IAM. */
  address: string;
  state: ControlPlaneState;
  /** Every action served, in order. */
  calls: string[];
  stop(): Promise<void>;
}

export function startControlPlaneEmulator(): ControlPlaneEmulator {
  const state: ControlPlaneState = {
    securityGroups: new Map(),
    launchTemplates: new Map(),
    instances: new Map(),
    images: new Map(),
    roles: new Map(),
    profiles: new Map(),
  };
  const calls: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const params = parseParams(await request.text());
      const action = String(params.Action);
      const requestId = crypto.randomUUID();
      const isIam = params.Version === "2010-05-08";
      calls.push(action);
      try {
        if (isIam) {
          const result = iam(state, action, params);
          return xmlResponse(
            `<${action}Response xmlns="https://iam.amazonaws.com/doc/2010-05-08/">${toXml(`${action}Result`, result, "member")}<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`,
          );
        }
        const result = ec2(state, action, params) as Record<string, Xml>;
        const body = Object.entries(result).map(([name, value]) => toXml(name, value, "item")).join("");
        return xmlResponse(`<${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${requestId}</requestId>${body}</${action}Response>`);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        const detail = `<Code>${error.code}</Code><Message>${escape(error.message)}</Message>`;
        return isIam
          ? xmlResponse(`<ErrorResponse><Error><Type>Sender</Type>${detail}</Error><RequestId>${requestId}</RequestId></ErrorResponse>`, error.status)
          : xmlResponse(`<Response><Errors><Error>${detail}</Error></Errors><RequestID>${requestId}</RequestID></Response>`, error.status);
      }
    },
  });
  return { address: `http://127.0.0.1:${server.port}`, state, calls, stop: () => server.stop(true) };
}
