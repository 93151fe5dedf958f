/**
 * The web role's HTTP surface (Elysia), one plugin per concern: the request id first (every answer carries it), the
 * error mapping, the upload limit, then the features: health, the classic contract, the JSON API under /v1.
 */
import { Elysia } from "elysia";
import type { Logger } from "../log.ts";
import { classicContract } from "./classic.ts";
import { errorMapping } from "./errors.ts";
import { health } from "./health.ts";
import type { JobSubmitter } from "./jobs.ts";
import { detectApi } from "./detect.ts";
import { recognizeApi } from "./recognize.ts";
import { searchApi } from "./search.ts";
import { verifyApi } from "./verify.ts";
import { requestId } from "./request-id.ts";
import { subjectsApi, type SubjectStore } from "./subjects.ts";
import type { ImageInspector } from "./upload.ts";
import { uploadLimit } from "./upload-limit.ts";

export interface WebDependencies {
  jobs: JobSubmitter;
  gallery: SubjectStore;
  inspect: ImageInspector;
  log: Logger;
  maxUploadBytes: number;
  /** The bearer token requests to the admin routes must carry (and the classic contract's, with `classicAuth`). */
  token: () => string;
  classicAuth: boolean;
  health(): Record<string, unknown>;
}

export function createWebServer(deps: WebDependencies) {
  const { jobs, inspect, log, maxUploadBytes } = deps;
  return new Elysia()
    .use(requestId)
    .use(errorMapping(log))
    .use(uploadLimit(maxUploadBytes))
    .use(health(deps.health))
    .use(classicContract({ jobs, inspect, log, maxUploadBytes, token: deps.classicAuth ? deps.token : undefined }))
    .use(recognizeApi({ jobs, inspect, maxUploadBytes, token: deps.token }))
    .use(detectApi({ jobs, inspect, maxUploadBytes, token: deps.token }))
    .use(verifyApi({ jobs, inspect, maxUploadBytes, gallery: deps.gallery, token: deps.token }))
    .use(searchApi({ gallery: deps.gallery, token: deps.token }))
    .use(subjectsApi({ jobs, inspect, maxUploadBytes, gallery: deps.gallery, token: deps.token }));
}
