/** The web role's HTTP surface (Elysia): the classic contract, the subjects API, health. */
import { timingSafeEqual } from "node:crypto";
import { Elysia, t, ValidationError } from "elysia";
import { HttpError } from "./http-error.ts";
import type { JobSubmitter } from "./jobs.ts";
import { readUpload, type ImageInspector } from "./upload.ts";
import type { Logger } from "../log.ts";
import type { GalleryWriter } from "../gallery-store.ts";

export interface WebDependencies {
  jobs: JobSubmitter;
  gallery: GalleryWriter;
  inspect: ImageInspector;
  log: Logger;
  maxUploadBytes: number;
  apiToken?: string;
  health(): Record<string, unknown>;
}

/** Multipart overhead allowed on top of the file itself before a request is refused unread. */
const MULTIPART_SLACK_BYTES = 64 * 1024;

/** Any printable name without slashes (it travels in URLs and object keys). */
const SubjectName = t.String({ minLength: 1, maxLength: 100, pattern: "^[^/\\\\\\u0000-\\u001f]+$" });

export function createWebServer(deps: WebDependencies) {
  const expectedAuthorization = deps.apiToken ? Buffer.from(`Bearer ${deps.apiToken}`) : undefined;
  const authorized = (header: string | null) => {
    if (!expectedAuthorization) return true;
    const given = Buffer.from(header ?? "");
    return given.length === expectedAuthorization.length && timingSafeEqual(given, expectedAuthorization);
  };

  return new Elysia()
    .derive(() => ({ requestId: crypto.randomUUID() }))
    // Refusals that must come before the body is read.
    .onRequest(({ request }) => {
      const length = Number(request.headers.get("content-length") ?? 0);
      if (length > deps.maxUploadBytes + MULTIPART_SLACK_BYTES) {
        return new HttpError(413, "file_too_large", `the request has ${length} bytes; the file limit is ${deps.maxUploadBytes}`).toResponse(crypto.randomUUID());
      }
      if (new URL(request.url).pathname.startsWith("/v1/") && !authorized(request.headers.get("authorization"))) {
        return new HttpError(401, "unauthorized", "a valid bearer token is required").toResponse(crypto.randomUUID());
      }
    })
    .onAfterHandle(({ set, requestId }) => {
      set.headers["x-request-id"] = requestId;
    })
    .onError(({ error, code, request, ...context }) => {
      // Errors raised before the request id was derived (unreadable body, bad path parameter) get one of their own.
      const requestId = "requestId" in context && typeof context.requestId === "string" ? context.requestId : crypto.randomUUID();
      const httpError = toHttpError(error, code);
      if (httpError.status >= 500) deps.log.error("request_failed", { requestId, path: new URL(request.url).pathname, error: String(error) });
      else deps.log.info("request_rejected", { requestId, code: httpError.code, status: httpError.status });
      return httpError.toResponse(requestId);
    })
    .get("/healthz", () => ({ status: "ok", ...deps.health() }))
    .post(
      "/",
      async ({ body, requestId }) => {
        const upload = await readUpload(body.inputFile, "inputFile", deps.maxUploadBytes, deps.inspect);
        const started = performance.now();
        const reply = await deps.jobs.submit(requestId, "recognize", upload);
        deps.log.info("recognized", { requestId, name: upload.name, person: reply.person, ms: Math.round(performance.now() - started) });
        return new Response(`${upload.name}:${reply.person}`, {
          headers: { "content-type": "text/plain; charset=utf-8", "x-request-id": requestId },
        });
      },
      { body: t.Object({ inputFile: t.File() }) },
    )
    .get("/v1/subjects", () => {
      return { subjects: deps.gallery.list() };
    })
    .post(
      "/v1/subjects/:name/faces",
      async ({ params, body, requestId, set }) => {
        const upload = await readUpload(body.image, "image", deps.maxUploadBytes, deps.inspect);
        const reply = await deps.jobs.submit(requestId, "embed", upload);
        if (!reply.embeddingKey) throw new HttpError(502, "no_embedding", "the app role returned no embedding");
        const faceId = await deps.gallery.enrollFromKey(params.name, reply.embeddingKey);
        set.status = 201;
        return { subject: params.name, faceId, faces: deps.gallery.faceCount(params.name) };
      },
      { params: t.Object({ name: SubjectName }), body: t.Object({ image: t.File() }) },
    )
    .delete(
      "/v1/subjects/:name",
      async ({ params, set }) => {
        const removed = await deps.gallery.removeSubject(params.name);
        if (removed === 0) throw new HttpError(404, "unknown_subject", `no subject named '${params.name}'`);
        set.status = 200;
        return { subject: params.name, removedFaces: removed };
      },
      { params: t.Object({ name: SubjectName }) },
    );
}

function toHttpError(error: unknown, code: string | number): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof ValidationError) {
    const field = error.valueError?.path.replace(/^\//, "") ?? "";
    if (error.type === "params") return new HttpError(400, "invalid_parameter", `invalid path parameter '${field}': ${error.valueError?.message ?? "invalid"}`);
    return new HttpError(400, "missing_field", `multipart field '${field}' with a file is required`);
  }
  if (code === "NOT_FOUND") return new HttpError(404, "not_found", "no such route");
  if (code === "PARSE") return new HttpError(400, "unreadable_body", "the body must be multipart/form-data");
  return new HttpError(500, "internal_error", "internal error");
}
