/**
 * Bearer-token middleware mounted on the paths it protects. It runs when the request arrives, before routing and
 * before the body is read, so a stranger's upload is never taken in and a bad path parameter never tells them more.
 * Its 401 says how to authenticate (RFC 6750 section 3): `WWW-Authenticate: Bearer realm="facefleet"`, with
 * `error="invalid_token"` when a bearer token was sent and is not the one. A live recognition key is taken on the
 * routes `key-scope.ts` names; elsewhere it gets 403 insufficient_scope (section 3.1), never 401: it is valid, only
 * not for that route.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Elysia } from "elysia";
import { HttpError } from "./http-error.ts";
import { recognitionKeyMay } from "./key-scope.ts";

/** Which requests need the token. */
export type Protects = (method: string, pathname: string) => boolean;

/** Compares digests, so neither the token's bytes nor its length show in the time taken. */
function sameToken(given: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

const CHALLENGE = 'Bearer realm="facefleet"';

/** The recognition keys in force: `verify` answers the id of the live key a bearer token is, else undefined. */
export interface RecognitionKeys {
  verify(presented: string): string | undefined;
}

export function bearerGuard(protects: Protects, token: () => string, keys?: RecognitionKeys) {
  return new Elysia().onRequest(({ request }) => {
    const { pathname } = new URL(request.url);
    if (!protects(request.method, pathname)) return;
    // The scheme's name is case-insensitive (RFC 7235 section 2.1); the token is not.
    const match = /^bearer +(\S+)$/i.exec(request.headers.get("authorization") ?? "");
    if (match && sameToken(match[1]!, token())) return;
    if (match && keys?.verify(match[1]!) !== undefined) {
      if (recognitionKeyMay(request.method, pathname)) return;
      throw new HttpError(403, "insufficient_scope", "a recognition key may only recognize, detect, verify and search; this route needs the admin token", {
        headers: { "www-authenticate": `${CHALLENGE}, error="insufficient_scope"` },
      });
    }
    const challenge = match ? `${CHALLENGE}, error="invalid_token"` : CHALLENGE;
    throw new HttpError(401, "unauthorized", "a valid bearer token is required", { headers: { "www-authenticate": challenge } });
  });
}
