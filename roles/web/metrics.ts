/**
 * Prometheus at `/metrics` and the operator's page's figures at `/stats`, both open: they carry counts and
 * durations, never a name or an image, and neither the admin token nor a recognition key is for a scraper to hold
 * (roles/web/README.md, "Metrics"). Also times every request by its route template and status.
 */
import { Elysia, StatusMap, t, type Static } from "elysia";
import type { ServiceMetrics } from "../metrics.ts";
import type { JobSubmitter } from "./jobs.ts";

/**
 * For requests answered before routing (no such route, or refused when they arrived: a missing token, too large an
 * upload): one series, whatever the path.
 */
const UNROUTED = "unrouted";

const Count = t.Integer({ minimum: 0 });
export const StatsSchema = t.Object(
  {
    queue: t.Union([t.Object({ visible: Count, inFlight: Count }), t.Null()], { description: "The request queue as the controller last saw it; null where no controller runs." }),
    instances: t.Union([t.Record(t.String(), Count), t.Null()], { description: "App instances by state; null where no controller runs." }),
    latencyMs: t.Object(
      { count: Count, p50: t.Number(), p90: t.Number(), p99: t.Number() },
      { description: "POST requests answered in the last minute: how many, and their duration percentiles." },
    ),
    requestsInFlight: Count,
    subjects: Count,
    faces: Count,
  },
  { examples: [{ queue: { visible: 3, inFlight: 4 }, instances: { pending: 1, running: 2, stopping: 0, stopped: 12, "shutting-down": 0 }, latencyMs: { count: 120, p50: 410, p90: 650, p99: 1200 }, requestsInFlight: 7, subjects: 100, faces: 500 }] },
);

export type Stats = Static<typeof StatsSchema>;

export function liveStats(metrics: ServiceMetrics): Stats {
  const observed = metrics.lastFleetObservation();
  return {
    queue: observed?.queue ?? null,
    instances: observed?.instances ?? null,
    latencyMs: metrics.latency.percentiles(Date.now()),
    requestsInFlight: metrics.requestsInFlightNow(),
    ...metrics.gallerySize(),
  };
}

const PROMETHEUS_EXAMPLE = `# HELP facefleet_http_requests_in_flight HTTP requests arrived and not yet answered.
# TYPE facefleet_http_requests_in_flight gauge
facefleet_http_requests_in_flight 1
`;

export function metricsEndpoint(metrics: ServiceMetrics) {
  const arrivals = new WeakMap<Request, number>();
  return new Elysia({ name: "metrics" })
    .onRequest(({ request }) => {
      arrivals.set(request, performance.now());
      metrics.requestStarted();
    })
    .onAfterResponse({ as: "global" }, ({ request, route, set, ...context }) => {
      const arrived = arrivals.get(request);
      if (arrived === undefined) return;
      arrivals.delete(request);
      // A handler's own Response carries its status; otherwise set.status holds it (the error mapping sets it too).
      const response = "responseValue" in context ? context.responseValue : undefined;
      const status = response instanceof Response ? response.status : typeof set.status === "number" ? set.status : StatusMap[set.status ?? "OK"];
      const ms = performance.now() - arrived;
      metrics.requestFinished({ method: request.method, route: route || UNROUTED, status, ms });
      // The routes that analyse images are the POSTs: their latency is the one the operator's page shows.
      if (request.method === "POST") metrics.latency.add(Date.now(), ms);
    })
    .get(
      "/metrics",
      async () => new Response(await metrics.registry.metrics(), { headers: { "content-type": metrics.registry.contentType } }),
      {
        response: { 200: t.String({ description: "Prometheus text exposition format", examples: [PROMETHEUS_EXAMPLE] }) },
        detail: { summary: "Prometheus metrics", tags: ["operations"] },
      },
    )
    .get(
      "/stats",
      () => liveStats(metrics),
      { response: { 200: StatsSchema }, detail: { summary: "Live figures for the operator's page", tags: ["operations"] } },
    );
}

/** The job submitter, recording the stage timings (milliseconds) each faces job's result reports. */
export function timedJobs(jobs: JobSubmitter, metrics: ServiceMetrics): JobSubmitter {
  return {
    submit: (jobId, kind, input, options) => jobs.submit(jobId, kind, input, options),
    search: (jobId, embedding, k) => jobs.search(jobId, embedding, k),
    async faces(jobId, upload, options) {
      const result = await jobs.faces(jobId, upload, options);
      metrics.stagesTimed(result.timings);
      return result;
    },
  };
}
