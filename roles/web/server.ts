/**
 * The web role's HTTP surface (Elysia), one plugin per concern: the request id first (every answer carries it), the
 * error mapping, the upload limit, then the features: health, the classic contract, the subjects API.
 */
import { Elysia } from "elysia";
import type { Logger } from "../log.ts";
import { classicContract } from "./classic.ts";
import { errorMapping } from "./errors.ts";
import { health } from "./health.ts";
import type { JobSubmitter } from "./jobs.ts";
import { requestId } from "./request-id.ts";
import { subjectsApi, type SubjectStore } from "./subjects.ts";
import type { UploadReader } from "./upload.ts";
import { uploadLimit } from "./upload-limit.ts";

export interface WebDependencies {
  jobs: JobSubmitter;
  gallery: SubjectStore;
  uploads: UploadReader;
  log: Logger;
  /** The bearer token requests to the admin routes must carry (and the classic contract's, with `classicAuth`). */
  token: () => string;
  classicAuth: boolean;
  health(): Record<string, unknown>;
}

export function createWebServer(deps: WebDependencies) {
  const { jobs, uploads, log } = deps;
  return new Elysia()
    .use(requestId)
    .use(errorMapping(log))
    .use(uploadLimit(uploads.limits.maxFileBytes))
    .use(health(deps.health))
    .use(classicContract({ jobs, uploads, log, token: deps.classicAuth ? deps.token : undefined }))
    .use(subjectsApi({ jobs, uploads, gallery: deps.gallery, token: deps.token }));
}
