/**
 * Refuses, before routing, a request whose URL is malformed (its Host) or whose path is not in canonical form:
 * `400 bad_request`. Bun hands over `request.url` already normalised (backslashes made slashes, dot segments and
 * `%2e%2e` resolved) while its router matched the raw target, so this sees what survives the normalisation (`//`, a
 * trailing `/`, `%5c`, `%00`, `%2e` in a name...); the bearer guard compares the route Bun matched with this path.
 * A query parameter named twice is refused too (`400 invalid_parameter`): the router keeps the last value, so
 * `?far=1e-3&far=0.1` would be answered at 0.1 with nothing said; no route takes a list.
 */
import { Elysia } from "elysia";
import { HttpError } from "./http-error.ts";

/** A host name, an IPv4 or a bracketed IPv6 address, and a port: what `request.url` holds between `//` and the path. */
const AUTHORITY = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
/** RFC 3986 pchar, with `%` (checked on its own below). */
const SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%]+$/;
/** What a canonical path never percent-encodes: unreserved characters (RFC 3986 section 6.2.2.2). */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * Where Elysia reads the path from (`handler.standardHostname`, on by default): the first `/` from the 12th
 * character, which is the path's for any authority of 4 characters or more over http, 3 over https.
 */
const ELYSIA_PATH_FROM = 11;

/** The raw path of a request's URL (no query), or undefined when the URL is malformed or its host is not one. */
export function requestPath(url: string): string | undefined {
  const scheme = /^https?:\/\//.exec(url);
  if (!scheme) return undefined;
  const start = url.indexOf("/", scheme[0].length);
  if (start === -1 || url.includes("#")) return undefined;
  if (!AUTHORITY.test(url.slice(scheme[0].length, start))) return undefined;
  // A shorter authority makes Elysia's router read a later part of the path than the one Bun routed.
  if (url.indexOf("/", ELYSIA_PATH_FROM) !== start) return undefined;
  const query = url.indexOf("?", start);
  return query === -1 ? url.slice(start) : url.slice(start, query);
}

/** Why a path is not canonical, or undefined when it is. */
export function nonCanonical(path: string): string | undefined {
  if (path === "/") return undefined;
  const segments = path.split("/").slice(1);
  for (const segment of segments) {
    if (segment === "") return "an empty segment (// or a trailing /)";
    if (segment === "." || segment === "..") return "a dot segment";
    if (!SEGMENT.test(segment)) return "a character that must be percent-encoded";
    const reason = badEscape(segment);
    if (reason) return reason;
  }
  return undefined;
}

function badEscape(segment: string): string | undefined {
  for (let at = segment.indexOf("%"); at !== -1; at = segment.indexOf("%", at + 1)) {
    const hex = segment.slice(at + 1, at + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return "a % not followed by two hex digits";
    const byte = parseInt(hex, 16);
    const char = String.fromCharCode(byte);
    if (UNRESERVED.test(char)) return `a percent-encoded '${char}'`;
    if (char === "/" || char === "\\") return "a percent-encoded slash or backslash";
    if (byte < 0x20 || byte === 0x7f) return "a percent-encoded control character";
  }
  try {
    decodeURIComponent(segment);
  } catch {
    return "percent-encoded bytes that are not UTF-8";
  }
  return undefined;
}

/** The first query parameter name given more than once, if any. */
export function repeatedParameter(url: string): string | undefined {
  const query = url.indexOf("?");
  if (query === -1) return undefined;
  const seen = new Set<string>();
  for (const [name] of new URLSearchParams(url.slice(query + 1))) {
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

export const requestTarget = new Elysia({ name: "request-target" }).onRequest(({ request }) => {
  const path = requestPath(request.url);
  if (path === undefined) throw new HttpError(400, "bad_request", "the request's Host or target is malformed");
  const reason = nonCanonical(path);
  if (reason) throw new HttpError(400, "bad_request", `the request path is not in canonical form: ${reason}`);
  const repeated = repeatedParameter(request.url);
  if (repeated !== undefined) throw new HttpError(400, "invalid_parameter", `query parameter '${repeated.slice(0, 64)}' is given more than once`);
});
