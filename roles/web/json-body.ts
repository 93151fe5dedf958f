/**
 * The body parser of the JSON routes (keys, search, rename): `application/json` only. Elysia's own would read a
 * multipart or urlencoded body into memory, and its "json" parser takes any content type; another type here is
 * `415 unsupported_media_type`, a body that is not JSON `400 unreadable_body` (errors.ts unwraps Elysia's ParseError).
 */
import { HttpError } from "./http-error.ts";

const JSON_TYPE = /^application\/json[ \t]*(?:;|$)/i;

export const UNSUPPORTED_MEDIA_TYPE = { error: "unsupported_media_type", message: "the body must be application/json" };

async function jsonBody({ request }: { request: Request }, contentType: string): Promise<unknown> {
  if (!JSON_TYPE.test(contentType)) throw new HttpError(415, UNSUPPORTED_MEDIA_TYPE.error, UNSUPPORTED_MEDIA_TYPE.message);
  try {
    return await request.json();
  } catch {
    throw new HttpError(400, "unreadable_body", "the body is not valid JSON");
  }
}

/** The route option: this parser, then Elysia's "json", which never runs and only tells the API docs the content type. */
export const JSON_ONLY = [jsonBody, "json" as const];
