/** Refuses a body over the upload limit from its `content-length`, before a byte of it is read. */
import { Elysia } from "elysia";
import { HttpError } from "./http-error.ts";
import { MULTIPART_SLACK_BYTES } from "./upload.ts";

export function uploadLimit(maxUploadBytes: number) {
  return new Elysia({ name: "upload-limit", seed: maxUploadBytes }).onRequest(({ request }) => {
    const length = Number(request.headers.get("content-length") ?? 0);
    if (length > maxUploadBytes + MULTIPART_SLACK_BYTES) {
      throw new HttpError(413, "file_too_large", `the request has ${length} bytes; the file limit is ${maxUploadBytes}`);
    }
  });
}
