/** EC2's `Filter.N.Name`/`Filter.N.Value.M` semantics: filters AND together, values OR, `*` and `?` wildcards. */
import { QueryError, records, text, texts, type Params } from "../query-protocol.ts";

export interface Filter {
  name: string;
  values: string[];
}

export type FilterFields = Record<string, string | string[] | undefined>;

export const filtersOf = (params: Params): Filter[] =>
  records(params, "Filter").map((filter) => ({ name: text(filter, "Name") ?? "", values: texts(filter, "Value") }));

const wildcard = (pattern: string) =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);

/** `fields` are the filter names this resource type supports; `tag:<Key>`, `tag-key` and `tag-value` come from tags. */
export function matchesFilters(filters: Filter[], fields: FilterFields, tags: Record<string, string>): boolean {
  return filters.every(({ name, values }) => {
    let candidates: string[];
    if (name.startsWith("tag:")) candidates = name.slice(4) in tags ? [tags[name.slice(4)]!] : [];
    else if (name === "tag-key") candidates = Object.keys(tags);
    else if (name === "tag-value") candidates = Object.values(tags);
    else if (name in fields) candidates = [fields[name] ?? []].flat();
    else throw new QueryError("InvalidParameterValue", `The filter '${name}' is invalid`);
    const patterns = values.map(wildcard);
    return candidates.some((candidate) => patterns.some((pattern) => pattern.test(candidate)));
  });
}

/** Offset pagination with an opaque NextToken, as the Describe calls page. */
export function paginate<T>(items: T[], params: Params): { page: T[]; nextToken?: string } {
  const maxResults = Number(text(params, "MaxResults") ?? items.length);
  const token = text(params, "NextToken");
  const offset = token === undefined ? 0 : Number(Buffer.from(token, "base64url").toString());
  if (!Number.isInteger(offset) || offset < 0) throw new QueryError("InvalidParameterValue", `Invalid NextToken: ${token}`);
  const end = offset + Math.max(1, maxResults);
  return { page: items.slice(offset, end), nextToken: end < items.length ? Buffer.from(String(end)).toString("base64url") : undefined };
}

/** The resources listed by id or name (each must exist: `find` throws), or all of them when none are listed. */
export function listedOrAll<T>(ids: string[], names: string[], find: (id: string | undefined, name: string | undefined) => T, all: Iterable<T>): T[] {
  if (!ids.length && !names.length) return [...all];
  return [...ids.map((id) => find(id, undefined)), ...names.map((name) => find(undefined, name))];
}
