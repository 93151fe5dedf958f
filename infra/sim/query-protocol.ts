/**
 * The AWS Query protocol both emulators speak (EC2's `ec2Query` and IAM's `awsQuery`): a form-encoded request body
 * with flattened names (`Filter.1.Value.2`, `Tags.member.1.Key`) in, XML out.
 */
import { escapeXml } from "./xml-tree.ts";

export type Params = { [name: string]: Param };
export type Param = string | Params | Param[];

/** Unflattens `A.1.B` into `{ A: [{ B }] }`; awsQuery's `member` segments are dropped so both dialects read alike. */
export function parseQuery(body: string): Params {
  const root: Params = {};
  for (const [name, value] of new URLSearchParams(body)) {
    const path = name.split(".").filter((segment) => segment !== "member");
    let node: Params | Param[] = root;
    path.forEach((segment, depth) => {
      const key: string | number = /^\d+$/.test(segment) ? Number(segment) - 1 : segment;
      const container = node as Record<string | number, Param>;
      if (depth === path.length - 1) {
        container[key] = value;
        return;
      }
      container[key] ??= /^\d+$/.test(path[depth + 1]!) ? [] : {};
      node = container[key] as Params | Param[];
    });
  }
  return root;
}

export const text = (params: Params, name: string): string | undefined => {
  const value = params[name];
  return typeof value === "string" ? value : undefined;
};

export const texts = (params: Params, name: string): string[] => {
  const value = params[name];
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
};

export const record = (params: Params, name: string): Params => {
  const value = params[name];
  return typeof value === "object" && !Array.isArray(value) ? value : {};
};

export const records = (params: Params, name: string): Params[] => {
  const value = params[name];
  return Array.isArray(value) ? value.filter((item): item is Params => typeof item === "object" && !Array.isArray(item)) : [];
};

/** `Tag.N.Key`/`Tag.N.Value` (or `Tags.member.N.…`) as a map. */
export const tagParams = (params: Params, name: string): Record<string, string> =>
  Object.fromEntries(records(params, name).map((tag) => [text(tag, "Key") ?? "", text(tag, "Value") ?? ""]));

export type XmlValue = string | number | boolean | undefined | XmlValue[] | Repeated | { [name: string]: XmlValue };

/** A list whose members are named `name` rather than `item` (EC2's GroupIdStringList: `<groupId>…</groupId>…`). */
export class Repeated {
  constructor(
    readonly name: string,
    readonly values: XmlValue[],
  ) {}
}

/** Objects become elements named by their keys, arrays repeat `itemName` (EC2: `item`, IAM: `member`). */
export function toXml(value: XmlValue, itemName: string): string {
  if (value === undefined) return "";
  if (Array.isArray(value)) return value.map((item) => `<${itemName}>${toXml(item, itemName)}</${itemName}>`).join("");
  if (value instanceof Repeated) return value.values.map((item) => `<${value.name}>${toXml(item, itemName)}</${value.name}>`).join("");
  if (typeof value === "object") {
    return Object.entries(value)
      .filter(([, child]) => child !== undefined)
      .map(([name, child]) => `<${name}>${toXml(child, itemName)}</${name}>`)
      .join("");
  }
  return escapeXml(String(value));
}

/** An error the handlers throw; each server renders it in its service's error XML. */
export class QueryError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}
