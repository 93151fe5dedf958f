/**
 * The body parser of the JSON routes (keys, search, rename): `application/json` only, at most `MAX_JSON_BODY_BYTES`.
 * Elysia's own would read a multipart or urlencoded body into memory, and its "json" parser takes any content type and
 * holds a body of any size Bun lets through (the server's backstop, far above this: the gallery import's bound). Another
 * type here is `415 unsupported_media_type`, a larger body `413 body_too_large` (from content-length before it is read,
 * or as a chunked one passes it), a body that is not JSON `400 unreadable_body` (errors.ts unwraps Elysia's ParseError).
 */
import { HttpError } from "./http-error.ts";
import { bodyTooLarge } from "./upload.ts";

const JSON_TYPE = /^application\/json[ \t]*(?:;|$)/i;

/** A search's 4,096-d embedding, the largest JSON body a route takes, is about 100 KB written out in full. */
export const MAX_JSON_BODY_BYTES = 1024 * 1024;

export const UNSUPPORTED_MEDIA_TYPE = { error: "unsupported_media_type", message: "the body must be application/json" };

/** The body's bytes, refused as soon as they pass `MAX_JSON_BODY_BYTES` (the rest never read). */
async function boundedText(request: Request): Promise<string> {
  if (Number(request.headers.get("content-length") ?? 0) > MAX_JSON_BODY_BYTES) throw bodyTooLarge(MAX_JSON_BODY_BYTES);
  const chunks: Uint8Array[] = [];
  let received = 0;
  for await (const chunk of request.body ?? []) {
    received += chunk.byteLength;
    if (received > MAX_JSON_BODY_BYTES) throw bodyTooLarge(MAX_JSON_BODY_BYTES);
    chunks.push(chunk);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

async function jsonBody({ request }: { request: Request }, contentType: string): Promise<unknown> {
  if (!JSON_TYPE.test(contentType)) throw new HttpError(415, UNSUPPORTED_MEDIA_TYPE.error, UNSUPPORTED_MEDIA_TYPE.message);
  const text = await boundedText(request);
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, "unreadable_body", "the body is not valid JSON");
  }
}

/** The route option: this parser, then Elysia's "json", which never runs and only tells the API docs the content type. */
export const JSON_ONLY = [jsonBody, "json" as const];
