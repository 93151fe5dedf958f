/**
 * Bearer-token middleware mounted on the paths it protects. It runs when the request arrives, before routing and
 * before the body is read, so a stranger's upload is never taken in and a bad path parameter never tells them more.
 * Its 401 says how to authenticate (RFC 6750 section 3): `WWW-Authenticate: Bearer realm="facefleet"`, with
 * `error="invalid_token"` when a bearer token was sent and is not the one.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Elysia } from "elysia";
import { HttpError } from "./http-error.ts";

/** Which requests need the token. */
export type Protects = (method: string, pathname: string) => boolean;

/** Compares digests, so neither the token's bytes nor its length show in the time taken. */
function sameToken(given: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

const CHALLENGE = 'Bearer realm="facefleet"';

export function bearerGuard(protects: Protects, token: () => string) {
  return new Elysia().onRequest(({ request }) => {
    if (!protects(request.method, new URL(request.url).pathname)) return;
    // The scheme's name is case-insensitive (RFC 7235 section 2.1); the token is not.
    const match = /^bearer +(\S+)$/i.exec(request.headers.get("authorization") ?? "");
    if (match && sameToken(match[1]!, token())) return;
    const challenge = match ? `${CHALLENGE}, error="invalid_token"` : CHALLENGE;
    throw new HttpError(401, "unauthorized", "a valid bearer token is required", { headers: { "www-authenticate": challenge } });
  });
}
