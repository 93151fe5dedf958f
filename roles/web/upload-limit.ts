/** Refuses a body over the upload limit from its `content-length`, before a byte of it is read. */
import { Elysia } from "elysia";
import { HttpError } from "./http-error.ts";

/** Multipart overhead allowed on top of the file itself before a request is refused unread. */
const MULTIPART_SLACK_BYTES = 64 * 1024;

export function uploadLimit(maxUploadBytes: number) {
  return new Elysia({ name: "upload-limit", seed: maxUploadBytes }).onRequest(({ request }) => {
    const length = Number(request.headers.get("content-length") ?? 0);
    if (length > maxUploadBytes + MULTIPART_SLACK_BYTES) {
      throw new HttpError(413, "file_too_large", `the request has ${length} bytes; the file limit is ${maxUploadBytes}`);
    }
  });
}
