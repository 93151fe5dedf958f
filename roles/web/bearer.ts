/**
 * The bearer guard: a request to a route that its policy (`access.ts`) says needs the admin token must carry it,
 * whatever path reached the route. Bun's router matches the raw request target, while `request.url` (which Elysia's
 * own router and everything else read) is normalised: backslashes turned into slashes, dot segments resolved. So the
 * guard decides on route templates, never on a path, and twice:
 * - when the request arrives, before the body is read (a stranger's upload is never taken in): on the template its
 *   URL's path names, after checking that this is the route Bun's router matched with the same parameters (a raw
 *   `..\..`, `%2e%2e` or `.` segment that made them differ is refused, 400 bad_request);
 * - after routing, before the parameters are validated: on the template the router matched, the last word.
 * Its 401 says how to authenticate (RFC 6750 section 3): `WWW-Authenticate: Bearer realm="facefleet"`, with
 * `error="invalid_token"` when a bearer token was sent and is not the one. A live recognition key is taken on the
 * routes the policy says need only one (`key-scope.ts`); elsewhere it gets 403 insufficient_scope (section 3.1), never
 * 401: it is valid, only not for that route.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Elysia } from "elysia";
import { paramsOf, templateOf, type AccessPolicy, type RouteTemplate } from "./access.ts";
import { HttpError } from "./http-error.ts";
import { requestPath } from "./request-target.ts";

/** Compares digests, so neither the token's bytes nor its length show in the time taken. */
function sameToken(given: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

const CHALLENGE = 'Bearer realm="facefleet"';

/** The parameters Bun's router matched the raw target with; undefined for a request it did not route. */
function routedParams(request: Request): Record<string, string> | undefined {
  const params: unknown = Reflect.get(request, "params");
  return params !== null && typeof params === "object" ? Object.fromEntries(Object.entries(params)) : undefined;
}

const sameParams = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([key, value]) => b[key] === value);

/** The recognition keys in force: `verify` answers the id of the live key a bearer token is, else undefined. */
export interface RecognitionKeys {
  verify(presented: string): string | undefined;
}

export interface GuardOptions {
  policy: AccessPolicy;
  token: () => string;
  keys: RecognitionKeys;
  /** The routes of the server it guards (read when requests arrive, so routes added after the guard count). */
  routes: () => readonly RouteTemplate[];
}

export function bearerGuard({ policy, token, keys, routes }: GuardOptions) {
  function check(request: Request, template: string | undefined): void {
    const method = request.method === "HEAD" ? "GET" : request.method;
    const needed = template === undefined ? "none" : policy(method, template);
    if (needed === "none") return;
    // The scheme's name is case-insensitive (RFC 7235 section 2.1); the token is not.
    const match = /^bearer +(\S+)$/i.exec(request.headers.get("authorization") ?? "");
    if (match && sameToken(match[1]!, token())) return;
    if (match && keys.verify(match[1]!) !== undefined) {
      if (needed === "recognition") return;
      throw new HttpError(403, "insufficient_scope", "a recognition key may only recognize, detect, verify and search; this route needs the admin token", {
        headers: { "www-authenticate": `${CHALLENGE}, error="insufficient_scope"` },
      });
    }
    const challenge = match ? `${CHALLENGE}, error="invalid_token"` : CHALLENGE;
    throw new HttpError(401, "unauthorized", "a valid bearer token is required", { headers: { "www-authenticate": challenge } });
  }

  return new Elysia({ name: "bearer-guard" })
    .onRequest(({ request }) => {
      const path = requestPath(request.url);
      if (path === undefined) return; // refused by the request-target check
      const template = templateOf(request.method, path, routes());
      const routed = routedParams(request);
      if (routed && !(template && sameParams(paramsOf(template, path), routed))) {
        throw new HttpError(400, "bad_request", "the request path is not in canonical form: it names another route than the one it reached");
      }
      check(request, template);
    })
    .onTransform({ as: "global" }, ({ request, route }) => check(request, route));
}
