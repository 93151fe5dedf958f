/**
 * Refuses a body past the body bound from its `content-length`, before a byte of it is read, whatever the route. The
 * upload reader refuses the rest: a body more than its route's files can hold, and a chunked body as it passes them.
 */
import { Elysia } from "elysia";
import { bodyTooLarge } from "./upload.ts";

export function uploadLimit(maxBodyBytes: number) {
  return new Elysia({ name: "upload-limit", seed: maxBodyBytes }).onRequest(({ request }) => {
    if (Number(request.headers.get("content-length") ?? 0) > maxBodyBytes) throw bodyTooLarge(maxBodyBytes);
  });
}
