/**
 * The web role's HTTP surface (Elysia), one plugin per concern: the request id first (every answer carries it), the
 * headers every answer carries, the request timing (so that requests refused before routing are timed too), the error
 * mapping, the refusal of malformed and non-canonical requests, the upload limit, the bearer guard (over every route,
 * by its template), then the features: the API docs, health, the operator's page, the classic contract, the JSON API
 * under /v1 with its keys.
 */
import { Elysia } from "elysia";
import type { Logger } from "../log.ts";
import type { ApiKeyStore } from "./api-key-store.ts";
import type { ServiceMetrics } from "../metrics.ts";
import { accessPolicy, type RouteTemplate } from "./access.ts";
import { bearerGuard } from "./bearer.ts";
import { classicContract } from "./classic.ts";
import { apiDocs } from "./docs.ts";
import { errorMapping } from "./errors.ts";
import { health } from "./health.ts";
import type { JobSubmitter } from "./jobs.ts";
import { detectApi } from "./detect.ts";
import { liveStats, metricsEndpoint, timedJobs } from "./metrics.ts";
import { keysApi } from "./keys.ts";
import { operatorPage } from "./page.ts";
import { recognizeApi } from "./recognize.ts";
import { galleryIoApi } from "./gallery-io.ts";
import { searchApi } from "./search.ts";
import { verifyApi } from "./verify.ts";
import { requestId } from "./request-id.ts";
import { requestTarget } from "./request-target.ts";
import { securityHeaders } from "./security-headers.ts";
import { subjectsApi, type SubjectStore } from "./subjects.ts";
import type { UploadReader } from "./upload.ts";
import { uploadLimit } from "./upload-limit.ts";

export interface WebDependencies {
  jobs: JobSubmitter;
  gallery: SubjectStore;
  uploads: UploadReader;
  log: Logger;
  metrics: ServiceMetrics;
  /** The bearer token requests to the admin routes must carry (and the classic contract's, with `classicAuth`). */
  token: () => string;
  /** The recognition keys, made and revoked by the admin under /v1/keys; they may only recognize (key-scope.ts). */
  keys: ApiKeyStore;
  classicAuth: boolean;
  health(): Record<string, unknown>;
}

export function createWebServer(deps: WebDependencies) {
  const { uploads, log, metrics, keys } = deps;
  const jobs = timedJobs(deps.jobs, metrics);
  // Every route the server answers, the guard's to decide on: filled once all are in.
  const routes: RouteTemplate[] = [];
  const app = new Elysia()
    .use(requestId)
    .use(securityHeaders)
    .use(metricsEndpoint(metrics))
    .use(errorMapping(log))
    .use(requestTarget)
    .use(uploadLimit(uploads.limits.maxBodyBytes))
    .use(bearerGuard({ policy: accessPolicy({ classicAuth: deps.classicAuth }), token: deps.token, keys, routes: () => routes }))
    .use(apiDocs(uploads.limits))
    .use(health(deps.health))
    .use(operatorPage(() => liveStats(metrics)))
    .use(classicContract({ jobs, uploads, log }))
    .use(recognizeApi({ jobs, uploads }))
    .use(detectApi({ jobs, uploads }))
    .use(verifyApi({ jobs, uploads, gallery: deps.gallery }))
    .use(searchApi({ gallery: deps.gallery }))
    .use(subjectsApi({ jobs, uploads, gallery: deps.gallery }))
    .use(galleryIoApi({ gallery: deps.gallery }))
    .use(keysApi({ keys }));
  routes.push(...app.routes);
  return app;
}
