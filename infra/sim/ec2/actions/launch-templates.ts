/** CreateLaunchTemplate, CreateLaunchTemplateVersion, ModifyLaunchTemplate, Describe/Delete and versions. */
import { QueryError, record, text, texts, type Params, type XmlValue } from "../../query-protocol.ts";
import { requireUsableProfile } from "../consistency.ts";
import type { Ec2Context, Ec2Handler } from "../context.ts";
import { filtersOf, listedOrAll, matchesFilters, paginate } from "../filters.ts";
import { launchSpecXml, mergeLaunchSpecs, parseLaunchSpec, tagSpecificationsOf } from "../launch-spec.ts";
import { ACCOUNT_ID, type Ec2Store, type LaunchTemplate } from "../model.ts";
import { tagSet } from "../render.ts";

const CREATED_BY = `arn:aws:iam::${ACCOUNT_ID}:root`;

export function findLaunchTemplate(store: Ec2Store, id: string | undefined, name: string | undefined): LaunchTemplate {
  if (id !== undefined) {
    const template = store.launchTemplates.get(id);
    if (!template) throw new QueryError("InvalidLaunchTemplateId.NotFound", `The specified launch template, with template ID ${id}, does not exist.`);
    return template;
  }
  const template = [...store.launchTemplates.values()].find((candidate) => candidate.name === name);
  if (!template) throw new QueryError("InvalidLaunchTemplateName.NotFoundException", `The specified launch template, with template name ${name}, does not exist.`);
  return template;
}

/** `$Latest`, `$Default` (or nothing) or a version number, checked to exist. */
export function templateVersion(template: LaunchTemplate, version: string | undefined): number {
  const number = version === undefined || version === "$Default" ? template.defaultVersion : version === "$Latest" ? Math.max(...template.versions.keys()) : Number(version);
  if (!template.versions.has(number)) {
    throw new QueryError("InvalidLaunchTemplateId.VersionNotFound", `Could not find launch template version ${version} for template ${template.id}`);
  }
  return number;
}

const templateOf = (params: Params, context: Ec2Context) => findLaunchTemplate(context.store, text(params, "LaunchTemplateId"), text(params, "LaunchTemplateName"));

const templateXml = (store: Ec2Store, template: LaunchTemplate): XmlValue => ({
  launchTemplateId: template.id,
  launchTemplateName: template.name,
  createTime: template.createTime.toISOString(),
  createdBy: CREATED_BY,
  defaultVersionNumber: template.defaultVersion,
  latestVersionNumber: Math.max(...template.versions.keys()),
  tagSet: tagSet(store.tagsOf(template.id)),
});

function versionXml(template: LaunchTemplate, number: number): XmlValue {
  const version = template.versions.get(number)!;
  return {
    launchTemplateId: template.id,
    launchTemplateName: template.name,
    versionNumber: number,
    versionDescription: version.description,
    createTime: version.createTime.toISOString(),
    createdBy: CREATED_BY,
    defaultVersion: number === template.defaultVersion,
    launchTemplateData: launchSpecXml(version.spec),
  };
}

const createLaunchTemplate: Ec2Handler = (params, context) => {
  const { store } = context;
  const name = text(params, "LaunchTemplateName") ?? "";
  if (!/^[a-zA-Z0-9().\-/_]{3,128}$/.test(name)) throw new QueryError("InvalidLaunchTemplateName.MalformedException", `Invalid launch template name: ${name}`);
  if ([...store.launchTemplates.values()].some((template) => template.name === name)) {
    throw new QueryError("InvalidLaunchTemplateName.AlreadyExistsException", `Launch template name already in use.`);
  }
  const spec = parseLaunchSpec(record(params, "LaunchTemplateData"));
  requireUsableProfile(spec, context);
  const template: LaunchTemplate = {
    id: store.newId("lt"),
    name,
    createTime: new Date(),
    defaultVersion: 1,
    versions: new Map([[1, { spec, description: text(params, "VersionDescription"), createTime: new Date() }]]),
  };
  store.launchTemplates.set(template.id, template);
  for (const spec of tagSpecificationsOf(params)) if (spec.resourceType === "launch-template") store.addTags(template.id, spec.tags);
  return { launchTemplate: templateXml(store, template) };
};

const createLaunchTemplateVersion: Ec2Handler = (params, context) => {
  const template = templateOf(params, context);
  const source = text(params, "SourceVersion");
  const base = source === undefined ? {} : template.versions.get(templateVersion(template, source))!.spec;
  const number = Math.max(...template.versions.keys()) + 1;
  const spec = mergeLaunchSpecs(base, parseLaunchSpec(record(params, "LaunchTemplateData")));
  template.versions.set(number, { spec, description: text(params, "VersionDescription"), createTime: new Date() });
  return { launchTemplateVersion: versionXml(template, number) };
};

const modifyLaunchTemplate: Ec2Handler = (params, context) => {
  const template = templateOf(params, context);
  const version = text(params, "SetDefaultVersion");
  if (version !== undefined) template.defaultVersion = templateVersion(template, version);
  return { launchTemplate: templateXml(context.store, template) };
};

const describeLaunchTemplates: Ec2Handler = (params, context) => {
  const { store } = context;
  const candidates = listedOrAll(
    texts(params, "LaunchTemplateId"),
    texts(params, "LaunchTemplateName"),
    (id, name) => findLaunchTemplate(store, id, name),
    store.launchTemplates.values(),
  );
  const filters = filtersOf(params);
  const matching = candidates.filter((template) => matchesFilters(filters, { "launch-template-name": template.name }, store.tagsOf(template.id)));
  const { page, nextToken } = paginate(matching, params);
  return { launchTemplates: page.map((template) => templateXml(store, template)), nextToken };
};

const describeLaunchTemplateVersions: Ec2Handler = (params, context) => {
  const template = templateOf(params, context);
  const requested = texts(params, "LaunchTemplateVersion");
  const numbers = requested.length ? requested.map((version) => templateVersion(template, version)) : [...template.versions.keys()];
  const { page, nextToken } = paginate(numbers, params);
  return { launchTemplateVersionSet: page.map((number) => versionXml(template, number)), nextToken };
};

const deleteLaunchTemplate: Ec2Handler = (params, context) => {
  const template = templateOf(params, context);
  const answer = { launchTemplate: templateXml(context.store, template) };
  context.store.launchTemplates.delete(template.id);
  context.store.tags.delete(template.id);
  return answer;
};

export const launchTemplateActions: Record<string, Ec2Handler> = {
  CreateLaunchTemplate: createLaunchTemplate,
  CreateLaunchTemplateVersion: createLaunchTemplateVersion,
  ModifyLaunchTemplate: modifyLaunchTemplate,
  DescribeLaunchTemplates: describeLaunchTemplates,
  DescribeLaunchTemplateVersions: describeLaunchTemplateVersions,
  DeleteLaunchTemplate: deleteLaunchTemplate,
};
