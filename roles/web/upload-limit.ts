/**
 * Refuses a body past the body bound from its `content-length`, before a byte of it is read, on every route but those
 * that bound their bodies themselves (the gallery import, at `maxImportBytes`). The upload reader refuses the rest: a
 * body more than its route's files can hold, and a chunked body as it passes them.
 */
import { Elysia } from "elysia";
import type { RouteTemplate } from "./access.ts";
import { requestPath } from "./request-target.ts";
import { bodyTooLarge } from "./upload.ts";

export function uploadLimit(maxBodyBytes: number, ownBounds: readonly RouteTemplate[] = []) {
  return new Elysia({ name: "upload-limit", seed: maxBodyBytes }).onRequest(({ request }) => {
    // After the request-target check: the path is canonical, so a static route's path is spelled one way only.
    const path = requestPath(request.url);
    if (ownBounds.some((route) => route.method === request.method && route.path === path)) return;
    if (Number(request.headers.get("content-length") ?? 0) > maxBodyBytes) throw bodyTooLarge(maxBodyBytes);
  });
}
