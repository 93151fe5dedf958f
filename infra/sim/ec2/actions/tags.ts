/** CreateTags, DeleteTags, DescribeTags, over every resource kind. */
import { QueryError, records, tagParams, text, texts } from "../../query-protocol.ts";
import { requireVisibleGroup } from "../consistency.ts";
import type { Ec2Handler } from "../context.ts";
import { filtersOf, matchesFilters, paginate } from "../filters.ts";
import { resourceTypeOf, type Ec2Store } from "../model.ts";

const NOT_FOUND_CODES: Record<string, string> = {
  instance: "InvalidInstanceID.NotFound",
  image: "InvalidAMIID.NotFound",
  "security-group": "InvalidGroup.NotFound",
  "launch-template": "InvalidLaunchTemplateId.NotFound",
};

function existingResources(store: Ec2Store, ids: string[]): string[] {
  for (const id of ids) {
    if (!store.resourceExists(id)) throw new QueryError(NOT_FOUND_CODES[resourceTypeOf(id)] ?? "InvalidID", `The ID '${id}' does not exist`);
  }
  return ids;
}

const createTags: Ec2Handler = (params, context) => {
  const { store } = context;
  const tags = tagParams(params, "Tag");
  const ids = existingResources(store, texts(params, "ResourceId"));
  for (const id of ids) {
    const group = store.securityGroups.get(id);
    if (group) requireVisibleGroup(group, context);
  }
  for (const id of ids) store.addTags(id, tags);
  return { return: true };
};

const deleteTags: Ec2Handler = (params, { store }) => {
  const tags = records(params, "Tag").map((tag) => ({ key: text(tag, "Key") ?? "", value: text(tag, "Value") }));
  for (const id of existingResources(store, texts(params, "ResourceId"))) store.removeTags(id, tags);
  return { return: true };
};

const describeTags: Ec2Handler = (params, { store }) => {
  const filters = filtersOf(params);
  const rows = [...store.tags].flatMap(([resourceId, tags]) =>
    [...tags].map(([key, value]) => ({ resourceId, resourceType: resourceTypeOf(resourceId), key, value })),
  );
  const matching = rows.filter((row) =>
    matchesFilters(filters, { "resource-id": row.resourceId, "resource-type": row.resourceType, key: row.key, value: row.value }, {}),
  );
  const { page, nextToken } = paginate(matching, params);
  return { tagSet: page, nextToken };
};

export const tagActions: Record<string, Ec2Handler> = { CreateTags: createTags, DeleteTags: deleteTags, DescribeTags: describeTags };
