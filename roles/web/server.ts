/**
 * The web role's HTTP surface (Elysia), one plugin per concern: the request id first (every answer carries it), the
 * headers every answer carries, the request timing (so that requests refused before routing are timed too), the
 * client's address, the error mapping, the refusal of malformed and non-canonical requests, the upload limit, the
 * bearer guard (over every route, by its template), then the features: the API docs, health, the operator's page, the
 * classic contract, the JSON API under /v1 with its keys.
 */
import { Elysia } from "elysia";
import type { FarCalibration } from "../../model/index.ts";
import type { Logger } from "../log.ts";
import type { ApiKeyStore } from "./api-key-store.ts";
import type { ServiceMetrics } from "../metrics.ts";
import { accessPolicy, type RouteTemplate } from "./access.ts";
import { bearerGuard } from "./bearer.ts";
import { classicContract } from "./classic.ts";
import { clientAddress } from "./client-address.ts";
import { apiDocs } from "./docs.ts";
import { errorMapping } from "./errors.ts";
import { health } from "./health.ts";
import type { JobSubmitter } from "./jobs.ts";
import { detectApi } from "./detect.ts";
import { liveStats, metricsEndpoint, timedJobs } from "./metrics.ts";
import { keysApi } from "./keys.ts";
import { operatorPage } from "./page.ts";
import { recognizeApi } from "./recognize.ts";
import { galleryIoApi, IMPORT_PATH } from "./gallery-io.ts";
import { searchApi } from "./search.ts";
import { verifyApi } from "./verify.ts";
import { requestId } from "./request-id.ts";
import { requestTarget } from "./request-target.ts";
import { securityHeaders } from "./security-headers.ts";
import { subjectsApi, type SubjectStore } from "./subjects.ts";
import type { UploadReader } from "./upload.ts";
import { uploadLimit } from "./upload-limit.ts";

export interface UploadPools {
  classic: UploadReader;
  api: UploadReader;
}

export interface WebDependencies {
  jobs: JobSubmitter;
  gallery: SubjectStore;
  /**
   * Two pools of upload slots: the classic route's (open to anyone unless classicAuth) and the /v1 routes' (behind the
   * bearer token), so strangers' slow bodies never hold the API's slots.
   */
  uploads: UploadPools;
  /** Most bytes of one gallery import (admin only, streamed): its own bound, not the upload limits. */
  maxImportBytes: number;
  log: Logger;
  metrics: ServiceMetrics;
  /** The bearer token requests to the admin routes must carry (and the classic contract's, with `classicAuth`). */
  token: () => string;
  /** The recognition keys, made and revoked by the admin under /v1/keys; they may only recognize (key-scope.ts). */
  keys: ApiKeyStore;
  classicAuth: boolean;
  /** The embedder's calibrated false accept rates, which recognize and verify take as `far`. */
  operatingPoints: FarCalibration;
  /** Requests a second per client on the classic route; 0: no limit. */
  classicRateLimit: number;
  /** A proxy in front: the client is the address it appended to X-Forwarded-For. */
  trustProxy: boolean;
  health(): Record<string, unknown>;
}

export function createWebServer(deps: WebDependencies) {
  const { log, metrics, keys, operatingPoints } = deps;
  const { classic, api: uploads } = deps.uploads;
  const jobs = timedJobs(deps.jobs, metrics);
  // Every route the server answers, the guard's to decide on: filled once all are in.
  const routes: RouteTemplate[] = [];
  const app = new Elysia()
    .use(requestId)
    .use(securityHeaders)
    .use(metricsEndpoint(metrics))
    .use(clientAddress(deps.trustProxy))
    .use(errorMapping(log))
    .use(requestTarget)
    .use(uploadLimit(uploads.limits.maxBodyBytes, [{ method: "POST", path: IMPORT_PATH }]))
    .use(bearerGuard({ policy: accessPolicy({ classicAuth: deps.classicAuth }), token: deps.token, keys, routes: () => routes }))
    .use(apiDocs(uploads.limits))
    .use(health(deps.health))
    .use(operatorPage(() => liveStats(metrics)))
    .use(classicContract({ jobs, uploads: classic, log, rateLimit: deps.classicRateLimit }))
    .use(recognizeApi({ jobs, uploads, operatingPoints }))
    .use(detectApi({ jobs, uploads }))
    .use(verifyApi({ jobs, uploads, gallery: deps.gallery, operatingPoints }))
    .use(searchApi({ jobs, gallery: deps.gallery }))
    .use(subjectsApi({ jobs, uploads, gallery: deps.gallery }))
    .use(galleryIoApi({ gallery: deps.gallery, maxImportBytes: deps.maxImportBytes }))
    .use(keysApi({ keys }));
  routes.push(...app.routes);
  return app;
}
