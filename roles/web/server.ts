/**
 * The web role's HTTP surface (Elysia), one plugin per concern: the request id first (every answer carries it), the
 * request timing (so that requests refused before routing are timed too), the client's address, the error mapping,
 * the upload limit, then the features: the API docs, health, the operator's page, the classic contract, the JSON API under /v1.
 */
import { Elysia } from "elysia";
import type { Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics.ts";
import { classicContract } from "./classic.ts";
import { clientAddress } from "./client-address.ts";
import { apiDocs } from "./docs.ts";
import { errorMapping } from "./errors.ts";
import { health } from "./health.ts";
import type { JobSubmitter } from "./jobs.ts";
import { detectApi } from "./detect.ts";
import { liveStats, metricsEndpoint, timedJobs } from "./metrics.ts";
import { operatorPage } from "./page.ts";
import { recognizeApi } from "./recognize.ts";
import { searchApi } from "./search.ts";
import { verifyApi } from "./verify.ts";
import { requestId } from "./request-id.ts";
import { subjectsApi, type SubjectStore } from "./subjects.ts";
import type { UploadReader } from "./upload.ts";

export interface UploadPools {
  classic: UploadReader;
  api: UploadReader;
}
import { uploadLimit } from "./upload-limit.ts";

export interface WebDependencies {
  jobs: JobSubmitter;
  gallery: SubjectStore;
  /**
   * Two pools of upload slots: the classic route's (open to anyone unless classicAuth) and the /v1 routes' (behind the
   * bearer token), so strangers' slow bodies never hold the API's slots.
   */
  uploads: UploadPools;
  log: Logger;
  metrics: ServiceMetrics;
  /** The bearer token requests to the admin routes must carry (and the classic contract's, with `classicAuth`). */
  token: () => string;
  classicAuth: boolean;
  /** Requests a second per client on the classic route; 0: no limit. */
  classicRateLimit: number;
  /** A proxy in front: the client is the address it appended to X-Forwarded-For. */
  trustProxy: boolean;
  health(): Record<string, unknown>;
}

export function createWebServer(deps: WebDependencies) {
  const { log, metrics } = deps;
  const { classic, api: uploads } = deps.uploads;
  const jobs = timedJobs(deps.jobs, metrics);
  return new Elysia()
    .use(requestId)
    .use(metricsEndpoint(metrics))
    .use(clientAddress(deps.trustProxy))
    .use(errorMapping(log))
    .use(uploadLimit(uploads.limits.maxBodyBytes))
    .use(apiDocs(uploads.limits))
    .use(health(deps.health))
    .use(operatorPage(() => liveStats(metrics)))
    .use(classicContract({ jobs, uploads: classic, log, token: deps.classicAuth ? deps.token : undefined, rateLimit: deps.classicRateLimit }))
    .use(recognizeApi({ jobs, uploads, token: deps.token }))
    .use(detectApi({ jobs, uploads, token: deps.token }))
    .use(verifyApi({ jobs, uploads, gallery: deps.gallery, token: deps.token }))
    .use(searchApi({ gallery: deps.gallery, token: deps.token }))
    .use(subjectsApi({ jobs, uploads, gallery: deps.gallery, token: deps.token }));
}
