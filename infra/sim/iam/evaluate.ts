/**
 * IAM policy evaluation within one account, as AWS documents it for identity-based policies: an explicit Deny wins,
 * then any Allow, else the request is implicitly denied. A statement applies when its Action and Resource patterns
 * (`*` and `?` wildcards, actions case-insensitive) match and every condition holds. Condition operators beyond the
 * ones below throw, so a policy can never pass a test by using something this evaluator does not understand. Policy
 * variables in a Resource (`${ec2:SourceInstanceARN}`) take the request context's value; a pattern whose variable
 * the request has no value for matches nothing.
 */
import type { PolicyDocument, PolicyStatement } from "../../policies.ts";

/** Request context keys (`aws:RequestTag/Role`, `ec2:InstanceType`, ...); multivalued keys are arrays. */
export type RequestContext = Record<string, string | string[] | undefined>;

export interface AccessRequest {
  action: string;
  resource: string;
  context?: RequestContext;
}

const asList = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

function wildcard(pattern: string, flags = ""): RegExp {
  const body = [...pattern].map((char) => (char === "*" ? ".*" : char === "?" ? "." : char.replace(/[.+^$[\]\\(){}|]/g, "\\$&"))).join("");
  return new RegExp(`^${body}$`, flags);
}

/** ARN patterns match part by part: `arn:aws:s3:::bucket/*` matches objects of the bucket only. */
const arnLike = (pattern: string, value: string) => wildcard(pattern).test(value);

type Comparison = (actual: string, wanted: string) => boolean;

const COMPARISONS: Record<string, Comparison> = {
  StringEquals: (actual, wanted) => actual === wanted,
  StringLike: (actual, wanted) => wildcard(wanted).test(actual),
  ArnEquals: (actual, wanted) => actual === wanted,
  ArnLike: (actual, wanted) => arnLike(wanted, actual),
  Bool: (actual, wanted) => actual.toLowerCase() === wanted.toLowerCase(),
  // A value that is not a number fails, as in AWS.
  NumericLessThanEquals: (actual, wanted) => actual.trim() !== "" && Number(actual) <= Number(wanted),
};

const NEGATIONS: Record<string, string> = { StringNotEquals: "StringEquals", StringNotLike: "StringLike", ArnNotEquals: "ArnEquals", ArnNotLike: "ArnLike" };

function conditionHolds(operator: string, key: string, expected: string | string[], context: RequestContext): boolean {
  const actual = asList(context[key]);
  const wanted = asList(expected);
  const [qualifier, named] = operator.includes(":") ? operator.split(":", 2) : [undefined, operator];
  // `...IfExists`: a key the request does not carry satisfies the condition; one it carries is compared as usual.
  const ifExists = named!.endsWith("IfExists");
  if (ifExists && actual.length === 0) return true;
  const base = ifExists ? named!.slice(0, -"IfExists".length) : named;
  const negated = NEGATIONS[base!];
  const compare = COMPARISONS[negated ?? base!];
  if (!compare) throw new Error(`condition operator ${operator} is not supported by the emulated IAM evaluator`);
  const matchesAny = (value: string) => wanted.some((candidate) => compare(value, candidate));
  const holdsFor = (value: string) => (negated ? !matchesAny(value) : matchesAny(value));
  switch (qualifier) {
    case undefined:
      // A missing key fails a positive condition and satisfies a negated one, as in AWS.
      if (actual.length === 0) return negated !== undefined;
      return actual.every(holdsFor);
    case "ForAllValues":
      return actual.every(holdsFor);
    case "ForAnyValue":
      return actual.some(holdsFor);
    default:
      throw new Error(`condition qualifier ${qualifier} is not supported by the emulated IAM evaluator`);
  }
}

/** The pattern with its `${key}` variables replaced from the context; undefined when one has no single value there. */
function resolveVariables(pattern: string, context: RequestContext): string | undefined {
  let unresolved = false;
  const resolved = pattern.replace(/\$\{([^}]+)\}/g, (_, key: string) => {
    const value = context[key];
    if (typeof value !== "string") unresolved = true;
    return typeof value === "string" ? value : "";
  });
  return unresolved ? undefined : resolved;
}

function applies(statement: PolicyStatement, request: AccessRequest): boolean {
  if (!asList(statement.Action).some((pattern) => wildcard(pattern, "i").test(request.action))) return false;
  const context = request.context ?? {};
  const resourceMatches = (pattern: string) => {
    const resolved = resolveVariables(pattern, context);
    return resolved !== undefined && arnLike(resolved, request.resource);
  };
  if (!asList(statement.Resource).some(resourceMatches)) return false;
  return Object.entries(statement.Condition ?? {}).every(([operator, entries]) =>
    Object.entries(entries).every(([key, expected]) => conditionHolds(operator, key, expected, context)),
  );
}

export type Decision = "allowed" | "explicit-deny" | "implicit-deny";

export function evaluate(policies: PolicyDocument[], request: AccessRequest): Decision {
  const statements = policies.flatMap((policy) => policy.Statement);
  if (statements.some((statement) => statement.Effect === "Deny" && applies(statement, request))) return "explicit-deny";
  return statements.some((statement) => statement.Effect === "Allow" && applies(statement, request)) ? "allowed" : "implicit-deny";
}

export const isAllowed = (policies: PolicyDocument | PolicyDocument[], request: AccessRequest): boolean =>
  evaluate(asList(policies), request) === "allowed";
