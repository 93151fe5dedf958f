/**
 * PutBucketLifecycleConfiguration's checks, which fauxqs skips (it stores any body): S3's API reference and user guide
 * ("Lifecycle configuration elements"), with the codes AWS answers. After the integrity header the call requires
 * (s3-integrity.ts), the configuration: well-formed, of the published schema, 1 to 1,000 rules, unique IDs of at most
 * 255 characters, Status Enabled or Disabled, exactly one of Filter and Prefix, at least one action, positive day
 * counts. Pure: the front answers a refusal with 400 and stores nothing.
 */
import { TransitionStorageClass } from "@aws-sdk/client-s3";
import { invalidRequest, type S3Refusal } from "./s3-integrity.ts";
import { parseXml, type XmlElement } from "./xml-tree.ts";

export const MAX_LIFECYCLE_RULES = 1000;
export const MAX_RULE_ID_LENGTH = 255;

const malformed = (detail: string): S3Refusal => ({
  code: "MalformedXML",
  message: `The XML you provided was not well-formed or did not validate against our published schema: ${detail}`,
});
const invalidArgument = (message: string): S3Refusal => ({ code: "InvalidArgument", message });

/** Each container element of the schema -> its children, `true` for those that may repeat. Any other element is a leaf. */
const SCHEMA: Record<string, Record<string, boolean>> = {
  LifecycleConfiguration: { Rule: true },
  Rule: {
    ID: false,
    Prefix: false,
    Filter: false,
    Status: false,
    Expiration: false,
    Transition: true,
    NoncurrentVersionTransition: true,
    NoncurrentVersionExpiration: false,
    AbortIncompleteMultipartUpload: false,
  },
  Filter: { Prefix: false, Tag: false, ObjectSizeGreaterThan: false, ObjectSizeLessThan: false, And: false },
  And: { Prefix: false, Tag: true, ObjectSizeGreaterThan: false, ObjectSizeLessThan: false },
  Tag: { Key: false, Value: false },
  Expiration: { Date: false, Days: false, ExpiredObjectDeleteMarker: false },
  Transition: { Date: false, Days: false, StorageClass: false },
  NoncurrentVersionTransition: { NoncurrentDays: false, StorageClass: false, NewerNoncurrentVersions: false },
  NoncurrentVersionExpiration: { NoncurrentDays: false, NewerNoncurrentVersions: false },
  AbortIncompleteMultipartUpload: { DaysAfterInitiation: false },
};
const ACTIONS = ["Expiration", "Transition", "NoncurrentVersionTransition", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"];
const STORAGE_CLASSES: readonly string[] = Object.values(TransitionStorageClass);

const child = (element: XmlElement, name: string) => element.children.find((candidate) => candidate.name === name);

/** What breaks the schema in `element`, if anything: an unknown or repeated child, text in a container, elements in a leaf. */
function schemaBreak(element: XmlElement): string | undefined {
  const children = Object.hasOwn(SCHEMA, element.name) ? SCHEMA[element.name]! : undefined;
  if (!children) return element.children.length > 0 ? `${element.name} holds elements` : undefined;
  if (element.text.trim() !== "") return `${element.name} holds text`;
  const seen = new Set<string>();
  for (const inner of element.children) {
    if (!Object.hasOwn(children, inner.name)) return `${inner.name} is not an element of ${element.name}`;
    if (!children[inner.name] && seen.has(inner.name)) return `${inner.name} appears twice in ${element.name}`;
    seen.add(inner.name);
    const broken = schemaBreak(inner);
    if (broken) return broken;
  }
  return undefined;
}

/** An xs:int (Days and the like), else undefined. */
function readInteger(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^[+-]?\d{1,10}$/.test(trimmed)) return undefined;
  const value = Number(trimmed);
  return value >= -(2 ** 31) && value < 2 ** 31 ? value : undefined;
}

/** `name` under `action`: not an integer is MalformedXML, fewer than `least` days InvalidArgument. */
function daysRefusal(action: XmlElement, name: string, least: 0 | 1, required: boolean): S3Refusal | undefined {
  const leaf = child(action, name);
  if (!leaf) return required ? malformed(`${action.name} takes ${name}`) : undefined;
  const days = readInteger(leaf.text);
  if (days === undefined) return malformed(`${action.name} ${name} is not an integer`);
  if (days < least) return invalidArgument(`'${name}' for ${action.name} action must be a ${least === 1 ? "positive" : "nonnegative"} integer`);
  return undefined;
}

/** Exactly one of Date and Days (Expiration: or ExpiredObjectDeleteMarker); a Date at midnight UTC. */
function whenRefusal(action: XmlElement, least: 0 | 1): S3Refusal | undefined {
  const forms = action.children.filter((inner) => inner.name === "Date" || inner.name === "Days" || inner.name === "ExpiredObjectDeleteMarker");
  if (forms.length !== 1) return malformed(`${action.name} takes exactly one of ${action.name === "Expiration" ? "Date, Days and ExpiredObjectDeleteMarker" : "Date and Days"}`);
  const date = child(action, "Date");
  if (date) {
    const at = Date.parse(date.text);
    if (Number.isNaN(at)) return malformed(`${action.name} Date is not an ISO 8601 date`);
    return at % 86_400_000 === 0 ? undefined : invalidArgument("'Date' must be at midnight GMT");
  }
  const marker = child(action, "ExpiredObjectDeleteMarker");
  if (marker) return marker.text === "true" || marker.text === "false" ? undefined : malformed("ExpiredObjectDeleteMarker is true or false");
  return daysRefusal(action, "Days", least, true);
}

function storageClassRefusal(action: XmlElement): S3Refusal | undefined {
  const storageClass = child(action, "StorageClass")?.text;
  return storageClass !== undefined && STORAGE_CLASSES.includes(storageClass) ? undefined : malformed(`${action.name} takes a StorageClass of ${STORAGE_CLASSES.join(", ")}`);
}

function filterRefusal(filter: XmlElement): S3Refusal | undefined {
  // An empty Filter is the whole bucket; more than one predicate must go under And.
  if (filter.children.length > 1) return malformed("a Filter takes at most one of Prefix, Tag, ObjectSizeGreaterThan, ObjectSizeLessThan and And");
  const predicates = [filter, ...filter.children.filter((inner) => inner.name === "And")].flatMap((holder) => holder.children);
  for (const predicate of predicates) {
    if (predicate.name === "Tag" && child(predicate, "Key") === undefined) return malformed("a Tag takes a Key");
    if (predicate.name.startsWith("ObjectSize") && !/^\s*\d{1,19}\s*$/.test(predicate.text)) return malformed(`${predicate.name} is not a nonnegative integer`);
  }
  return undefined;
}

const hasTag = (filter: XmlElement | undefined) =>
  filter !== undefined && [filter, ...filter.children.filter((inner) => inner.name === "And")].some((holder) => child(holder, "Tag") !== undefined);

function ruleRefusal(rule: XmlElement): S3Refusal | undefined {
  const status = child(rule, "Status")?.text;
  if (status !== "Enabled" && status !== "Disabled") return malformed("a Rule's Status is Enabled or Disabled");
  const id = child(rule, "ID")?.text;
  if (id !== undefined && [...id].length > MAX_RULE_ID_LENGTH) return invalidArgument(`ID length should not exceed allowed limit of ${MAX_RULE_ID_LENGTH}`);
  const filter = child(rule, "Filter");
  if ((filter === undefined) === (child(rule, "Prefix") === undefined)) return malformed("a Rule takes exactly one of Filter and Prefix");
  const filtered = filter && filterRefusal(filter);
  if (filtered) return filtered;
  if (!rule.children.some((inner) => ACTIONS.includes(inner.name))) return invalidRequest("At least one action needs to be specified in a rule");
  const expiration = child(rule, "Expiration");
  const abort = child(rule, "AbortIncompleteMultipartUpload");
  const actionRefusals = [
    expiration && whenRefusal(expiration, 1),
    expiration && child(expiration, "ExpiredObjectDeleteMarker") && hasTag(filter) ? invalidRequest("ExpiredObjectDeleteMarker cannot be specified with Tags") : undefined,
    abort && daysRefusal(abort, "DaysAfterInitiation", 1, true),
    abort && hasTag(filter) ? invalidRequest("AbortIncompleteMultipartUpload cannot be specified with Tags") : undefined,
    ...rule.children.filter((inner) => inner.name === "Transition").flatMap((transition) => [whenRefusal(transition, 0), storageClassRefusal(transition)]),
    ...rule.children
      .filter((inner) => inner.name === "NoncurrentVersionTransition")
      .flatMap((transition) => [daysRefusal(transition, "NoncurrentDays", 0, true), daysRefusal(transition, "NewerNoncurrentVersions", 1, false), storageClassRefusal(transition)]),
    ...rule.children
      .filter((inner) => inner.name === "NoncurrentVersionExpiration")
      .flatMap((expiry) => [daysRefusal(expiry, "NoncurrentDays", 1, true), daysRefusal(expiry, "NewerNoncurrentVersions", 1, false)]),
  ];
  return actionRefusals.find((refusal) => refusal !== undefined);
}

/** What S3 answers to this configuration body, undefined when it takes it. */
export function lifecycleConfigurationRefusal(body: string): S3Refusal | undefined {
  const root = parseXml(body);
  if (!root) return malformed("not well-formed");
  if (root.name !== "LifecycleConfiguration") return malformed(`the root element is ${root.name}, not LifecycleConfiguration`);
  const broken = schemaBreak(root);
  if (broken) return malformed(broken);
  const rules = root.children;
  if (rules.length === 0 || rules.length > MAX_LIFECYCLE_RULES) return malformed(`a configuration holds 1 to ${MAX_LIFECYCLE_RULES} rules, not ${rules.length}`);
  for (const rule of rules) {
    const refusal = ruleRefusal(rule);
    if (refusal) return refusal;
  }
  const ids = rules.map((rule) => child(rule, "ID")?.text).filter((id) => id !== undefined);
  if (new Set(ids).size < ids.length) return invalidArgument("Rule ID must be unique. Found same ID for more than one rule");
  return undefined;
}

/** What S3 answers to a PutBucketLifecycleConfiguration body, undefined when it takes it (its integrity header: s3-integrity.ts). */
export function lifecycleBodyRefusal(body: Uint8Array): S3Refusal | undefined {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    return malformed("not UTF-8");
  }
  return lifecycleConfigurationRefusal(text);
}
