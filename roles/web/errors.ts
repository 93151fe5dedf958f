/**
 * The one place where errors become HTTP answers. The client gets a code, a message written for it and the request
 * id; what went wrong underneath (stacks, SDK and cloud messages with their account, role and bucket names) goes to
 * the log under that request id, never into the answer.
 */
import { Elysia, ValidationError } from "elysia";
import { GalleryError, type GalleryErrorCode } from "../gallery-store.ts";
import type { Logger } from "../log.ts";
import { HttpError } from "./http-error.ts";
import { JobRefusedError, JobTimeoutError } from "./jobs.ts";
import { invalidQueryParameter, takesOf } from "./query-numbers.ts";
import { requestId, requestIdOf } from "./request-id.ts";
import { requestPath } from "./request-target.ts";
import { IMAGE_PROBLEM_STATUS } from "./upload.ts";

const GALLERY_ERROR_STATUS: Record<GalleryErrorCode, number> = {
  embedding_missing: 502,
  embedding_mismatch: 409,
  gallery_contended: 503,
};

/** What an app instance may refuse a job for that is the sender's to fix; its message is written for them. */
const CLIENT_REFUSAL_STATUS: Record<string, number> = {
  ...IMAGE_PROBLEM_STATUS,
  no_subjects_enrolled: 409,
  wrong_dimensions: 400,
  no_face: 422,
  multiple_faces: 422,
  face_too_small: 422,
  low_quality: 422,
};

/** A failure that is the client's to fix, as the answer it gets; undefined for a fault. */
export function refusalOf(error: unknown): HttpError | undefined {
  if (error instanceof HttpError && error.status < 500) return error;
  if (error instanceof JobRefusedError) {
    const status = CLIENT_REFUSAL_STATUS[error.code];
    if (status !== undefined) return new HttpError(status, error.code, error.message);
  }
  return undefined;
}

export function errorMapping(log: Logger) {
  return new Elysia().use(requestId).onError({ as: "global" }, ({ error, code, request, set }) => {
    const id = requestIdOf(request);
    try {
      const answer = toHttpError(error, code, request);
      // The URL as it came: a malformed one (refused by the request-target check) is logged, not parsed.
      const fields = { requestId: id, method: request.method, path: requestPath(request.url) ?? request.url, status: answer.status, code: answer.code };
      if (answer.status >= 500) log.error("request_failed", { ...fields, ...details(error) });
      else log.info("request_rejected", fields);
      set.status = answer.status; // what the hooks after the answer (request timing) see
      return answer.render(id);
    } catch {
      // The mapping itself failed (a logger that cannot write, say): an error thrown here would reach Bun, whose
      // answer is a bare 500 in production and its developer page otherwise, and the hooks after the answer
      // (the in-flight gauge) would never run.
      set.status = 500;
      return INTERNAL_ERROR.render(id);
    }
  });
}

const INTERNAL_ERROR = new HttpError(500, "internal_error", "internal error");
const CLIENT_CLOSED = new HttpError(400, "client_closed", "the connection closed before the request's body arrived");

const isJson = (request: Request) => (request.headers.get("content-type") ?? "").startsWith("application/json");

function toHttpError(error: unknown, code: string | number, request: Request): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof ValidationError) {
    const field = error.valueError?.path.replace(/^\//, "") ?? "";
    const reason = error.valueError?.message ?? "invalid";
    if (error.type === "params") return new HttpError(400, "invalid_parameter", `invalid path parameter '${field}': ${reason}`);
    // A query number refused by its pattern is told what it takes, as when out of its bounds (roles/web/query-numbers.ts).
    const takes = takesOf(error.valueError?.schema);
    if (error.type === "query" && takes !== undefined) return invalidQueryParameter(field, takes);
    if (error.type === "query") return new HttpError(400, "invalid_parameter", `invalid query parameter '${field}': ${reason}`);
    if (error.type === "body" && isJson(request)) {
      return new HttpError(400, "invalid_body", `invalid field '${field}' in the JSON body: ${reason}`);
    }
    return new HttpError(400, "missing_field", `multipart field '${field}' with a file is required`);
  }
  if (error instanceof GalleryError) return new HttpError(GALLERY_ERROR_STATUS[error.code], error.code, error.message);
  if (error instanceof JobTimeoutError) {
    return new HttpError(504, "timeout", `no answer within ${error.timeoutMs} ms; the job still completes and its result lands in the output bucket`);
  }
  if (error instanceof JobRefusedError) {
    const refusal = refusalOf(error);
    if (refusal) return refusal;
    if (error.code === "job_failed") return new HttpError(500, "job_failed", "the job failed on every try and was set aside", { cause: error });
    return new HttpError(500, "internal_error", "internal error", { cause: error });
  }
  // The client went away while its body was read (Bun's body stream then fails with an AbortError): nobody gets this
  // answer, but it is the client's doing, not a fault of the service to log and count as one.
  if (request.signal.aborted && error instanceof Error && error.name === "AbortError") return CLIENT_CLOSED;
  if (code === "NOT_FOUND") return new HttpError(404, "not_found", "no such route");
  if (code === "PARSE" && error instanceof Error && error.cause instanceof HttpError) return error.cause;
  if (code === "PARSE") return new HttpError(400, "unreadable_body", isJson(request) ? "the body is not valid JSON" : "the body must be multipart/form-data");
  return new HttpError(500, "internal_error", "internal error", { cause: error });
}

/** Everything about a failure worth logging: the error and its causes, each with its name, message and stack. */
function details(error: unknown): { failure: Record<string, unknown>[] } {
  const failure: Record<string, unknown>[] = [];
  let current = error;
  while (current !== undefined && failure.length < 5) {
    if (!(current instanceof Error)) {
      failure.push({ value: String(current) });
      break;
    }
    const code = current instanceof JobRefusedError ? { code: current.code } : {};
    failure.push({ name: current.name, message: current.message, stack: current.stack, ...code });
    current = current.cause;
  }
  return { failure };
}
