/**
 * Every Prometheus series the service exports, defined in this one place. The roles record what they see (the web
 * role its requests and the replies' timings, the app role its jobs, the controller its last look at the queue and
 * the fleet); the gallery is read when scraped. Each process has one; the web role serves it at `/metrics`.
 * A process without an app role (the web+controller instance on EC2) shows the app instances' job counters from
 * the job reports the controller reads, one series per instance (label `instance`), as Prometheus federation would.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AppInstance, InstanceState, QueueDepth } from "./cloud/types.ts";
import type { DeadLetterReason, JobCounts, JobKind, JobOutcome, JobReport } from "./messages.ts";

export interface GallerySize {
  subjects: number;
  faces: number;
}

/** Seconds, from a fast rejection to a request that waited for a cold fleet. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Seconds per inference stage: a few milliseconds (match) to a second (a large image's decode on a busy core). */
const STAGE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const INSTANCE_STATES: InstanceState[] = ["pending", "running", "stopping", "stopped", "shutting-down"];
/** How far back the operator's page's latency percentiles look. */
const LATENCY_WINDOW_MS = 60_000;

/** What the app role's consumer records of its jobs. */
export interface JobMetrics {
  jobTried(kind: JobKind, outcome: JobOutcome): void;
  jobRedelivered(): void;
  jobDeadLettered(reason: DeadLetterReason): void;
  /** The instance calls itself unhealthy (faults in a row, roles/app/consumer.ts): the controller will replace it. */
  instanceMarkedUnhealthy(): void;
}

/** Job counters as plain counts, passing each count on to `next` (an app instance's tally feeds its process's metrics). */
export class JobTally implements JobMetrics {
  private readonly tries = new Map<string, JobCounts["tries"][number]>();
  private readonly deadLettered = new Map<DeadLetterReason, number>();
  private redelivered = 0;
  private unhealthyMarks = 0;

  constructor(private readonly next?: JobMetrics) {}

  jobTried(kind: JobKind, outcome: JobOutcome): void {
    const key = `${kind}/${outcome}`;
    const entry = this.tries.get(key) ?? { kind, outcome, count: 0 };
    entry.count++;
    this.tries.set(key, entry);
    this.next?.jobTried(kind, outcome);
  }

  jobRedelivered(): void {
    this.redelivered++;
    this.next?.jobRedelivered();
  }

  jobDeadLettered(reason: DeadLetterReason): void {
    this.deadLettered.set(reason, (this.deadLettered.get(reason) ?? 0) + 1);
    this.next?.jobDeadLettered(reason);
  }

  instanceMarkedUnhealthy(): void {
    this.unhealthyMarks++;
    this.next?.instanceMarkedUnhealthy();
  }

  counts(): JobCounts {
    return {
      tries: [...this.tries.values()].map((entry) => ({ ...entry })),
      redelivered: this.redelivered,
      deadLettered: [...this.deadLettered].map(([reason, count]) => ({ reason, count })),
      ...(this.unhealthyMarks > 0 && { unhealthyMarks: this.unhealthyMarks }),
    };
  }
}

/**
 * Where a process's job series come from: `this-process` when an app role runs in it (embedded, every instance
 * records into the one registry; an app instance on EC2), `job-reports` when none does (the web+controller instance on
 * EC2), so no job is counted twice.
 */
export type JobCountsSource = "this-process" | "job-reports";

export interface LatencyPercentiles {
  /** Requests in the window. */
  count: number;
  p50: number;
  p90: number;
  p99: number;
}

/** The latency histogram's buckets: each bound this much above the one before, from 0.1 ms to 10 min (321 buckets). */
export const LATENCY_BUCKET_RATIO = 1.05;
const LATENCY_LOWEST_BOUND_MS = 0.1;
const LATENCY_BUCKETS = Math.ceil(Math.log(600_000 / LATENCY_LOWEST_BOUND_MS) / Math.log(LATENCY_BUCKET_RATIO)) + 1;
/** The window moves by this much: it holds the requests of the last `spanMs`, to this. */
const LATENCY_SLOT_MS = 1_000;

/** The histogram bucket of a duration: bucket i holds (bound(i-1), bound(i)]; the last one everything above. */
function latencyBucket(ms: number): number {
  if (!(ms > LATENCY_LOWEST_BOUND_MS)) return 0;
  return Math.min(LATENCY_BUCKETS - 1, Math.ceil(Math.log(ms / LATENCY_LOWEST_BOUND_MS) / Math.log(LATENCY_BUCKET_RATIO)));
}

const latencyBound = (bucket: number) => LATENCY_LOWEST_BOUND_MS * LATENCY_BUCKET_RATIO ** bucket;

/**
 * Durations of recent requests, for percentiles over the last minute, in a fixed memory whatever the request rate: one
 * histogram of log-spaced buckets (5% apart) per second of the window, in a ring. A percentile is the upper bound of
 * the bucket holding its rank (never above the largest duration seen), so it is at most one bucket's width above the
 * exact one (the first bucket is 0 to 0.1 ms wide; past 10 min, the largest duration); adding is O(1), reading O(seconds × buckets). No timers: the caller passes the clock.
 */
export class LatencyWindow {
  private readonly slots: number;
  /** slots × buckets counts; a slot is the histogram of one second. */
  private readonly counts: Uint32Array;
  /** The second each slot holds (-1: none yet), and the largest duration it saw. */
  private readonly slotSecond: Float64Array;
  private readonly slotMax: Float64Array;
  private readonly totals = new Float64Array(LATENCY_BUCKETS);

  constructor(spanMs = LATENCY_WINDOW_MS) {
    this.slots = Math.max(1, Math.round(spanMs / LATENCY_SLOT_MS));
    this.counts = new Uint32Array(this.slots * LATENCY_BUCKETS);
    this.slotSecond = new Float64Array(this.slots).fill(-1);
    this.slotMax = new Float64Array(this.slots);
  }

  add(now: number, ms: number): void {
    const second = Math.floor(now / LATENCY_SLOT_MS);
    const slot = second % this.slots;
    if (this.slotSecond[slot] !== second) {
      this.counts.fill(0, slot * LATENCY_BUCKETS, (slot + 1) * LATENCY_BUCKETS);
      this.slotSecond[slot] = second;
      this.slotMax[slot] = 0;
    }
    this.counts[slot * LATENCY_BUCKETS + latencyBucket(ms)]!++;
    this.slotMax[slot] = Math.max(this.slotMax[slot]!, ms);
  }

  /** Nearest-rank percentiles in milliseconds, to a bucket's width; zeros when nothing is in the window. */
  percentiles(now: number): LatencyPercentiles {
    const second = Math.floor(now / LATENCY_SLOT_MS);
    this.totals.fill(0);
    let count = 0;
    let max = 0;
    for (let slot = 0; slot < this.slots; slot++) {
      const age = second - this.slotSecond[slot]!;
      if (this.slotSecond[slot]! < 0 || age < 0 || age >= this.slots) continue;
      for (let bucket = 0; bucket < LATENCY_BUCKETS; bucket++) this.totals[bucket]! += this.counts[slot * LATENCY_BUCKETS + bucket]!;
      max = Math.max(max, this.slotMax[slot]!);
    }
    for (const n of this.totals) count += n;
    const rank = (p: number) => {
      if (count === 0) return 0;
      const wanted = Math.max(1, Math.ceil(p * count));
      let seen = 0;
      for (let bucket = 0; bucket < LATENCY_BUCKETS; bucket++) {
        seen += this.totals[bucket]!;
        // The last bucket has no upper bound: its largest duration is the one known.
        if (seen >= wanted) return bucket === LATENCY_BUCKETS - 1 ? max : Math.min(latencyBound(bucket), max);
      }
      return max;
    };
    return { count, p50: rank(0.5), p90: rank(0.9), p99: rank(0.99) };
  }
}

/** What the controller saw last: the request queue and the fleet's instances by state. */
export interface FleetObservation {
  queue: QueueDepth;
  instances: Record<InstanceState, number>;
}

export class ServiceMetrics implements JobMetrics {
  readonly registry = new Registry();
  /** Recent durations of the requests the web role picks (those that analyse images), for the operator's page. */
  readonly latency = new LatencyWindow();
  private gallery: (() => GallerySize) | undefined;
  private fleet: FleetObservation | undefined;
  private inFlight = 0;
  private readonly jobCounts = new JobTally();
  /** The app instances' counters from the job reports the controller read last. */
  private reportedJobCounts: { instance: string; counts: JobCounts }[] = [];

  private readonly requestDuration = new Histogram({
    name: "facefleet_http_request_duration_seconds",
    help: "HTTP requests by method, route template and status, from arrival to the answer sent.",
    labelNames: ["method", "route", "status"] as const,
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });
  private readonly deadLetters = new Counter({
    name: "facefleet_dead_letters_total",
    help: "Dead-lettered jobs the controller's drain dealt with: redriven (sent to the request queue again) or failed (past their last redrive: answered job_failed and kept for the operator).",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  private readonly instancesReplacedTotal = new Counter({
    name: "facefleet_instances_replaced_total",
    help: "App instances the controller stopped or terminated to replace them: unhealthy (the instance reported it cannot run jobs) or no_progress (the whole fleet answered nothing while jobs waited).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  private readonly stageDuration = new Histogram({
    name: "facefleet_inference_stage_duration_seconds",
    help: "Time of each inference stage of a job, as the app instance's reply reports it.",
    labelNames: ["stage"] as const,
    buckets: STAGE_BUCKETS,
    registers: [this.registry],
  });

  constructor(private readonly jobCountsSource: JobCountsSource = "this-process") {
    const metrics = this;
    /** A job counter: `samples` reads its values and own labels from a set of counts, one set per series source. */
    const jobCounter = (name: string, help: string, labelNames: string[], samples: (counts: JobCounts) => [Record<string, string>, number][]) =>
      new Counter({
        name,
        help,
        labelNames: ["instance", ...labelNames],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const { labels, counts } of metrics.jobCountSeries()) for (const [own, value] of samples(counts)) this.inc({ ...labels, ...own }, value);
        },
      });
    jobCounter(
      "facefleet_jobs_total",
      "Tries of jobs at the app role by kind and outcome: answered, refused (an answer with a reason, e.g. no_face) or failed (a fault; tried again).",
      ["kind", "outcome"],
      (counts) => counts.tries.map(({ kind, outcome, count }) => [{ kind, outcome }, count]),
    );
    jobCounter(
      "facefleet_jobs_redelivered_total",
      "Job messages received again after an earlier receipt (a failed try, a lost consumer, an expired visibility timeout).",
      [],
      (counts) => [[{}, counts.redelivered]],
    );
    jobCounter("facefleet_jobs_dead_lettered_total", "Messages an app instance set aside in the dead-letter queue, by reason: malformed (not a job). Jobs the queue dead-letters are the controller's: facefleet_dead_letters_total.", ["reason"], (counts) =>
      counts.deadLettered.map(({ reason, count }) => [{ reason }, count]),
    );
    jobCounter(
      "facefleet_instance_unhealthy_marks_total",
      "Times an app instance called itself unhealthy after faults in a row (its job report then says healthy: false, and the controller replaces it).",
      [],
      (counts) => [[{}, counts.unhealthyMarks ?? 0]],
    );
    new Gauge({
      name: "facefleet_http_requests_in_flight",
      help: "HTTP requests arrived and not yet answered.",
      registers: [this.registry],
      collect() {
        this.set(metrics.inFlight);
      },
    });
    new Gauge({
      name: "facefleet_request_queue_messages",
      help: "Messages on the request queue as the controller last saw them: visible (waiting) and in_flight (taken, not yet deleted).",
      labelNames: ["state"] as const,
      registers: [this.registry],
      collect() {
        if (!metrics.fleet) return;
        this.set({ state: "visible" }, metrics.fleet.queue.visible);
        this.set({ state: "in_flight" }, metrics.fleet.queue.inFlight);
      },
    });
    new Gauge({
      name: "facefleet_app_instances",
      help: "App instances by state as the controller last saw them.",
      labelNames: ["state"] as const,
      registers: [this.registry],
      collect() {
        if (!metrics.fleet) return;
        for (const state of INSTANCE_STATES) this.set({ state }, metrics.fleet.instances[state]);
      },
    });
    new Gauge({
      name: "facefleet_gallery_subjects",
      help: "Subjects enrolled in the gallery.",
      registers: [this.registry],
      collect() {
        this.set(metrics.gallerySize().subjects);
      },
    });
    new Gauge({
      name: "facefleet_gallery_faces",
      help: "Faces enrolled in the gallery, all subjects together.",
      registers: [this.registry],
      collect() {
        this.set(metrics.gallerySize().faces);
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  requestStarted(): void {
    this.inFlight++;
  }

  requestsInFlightNow(): number {
    return this.inFlight;
  }

  /** `route` is the route's template (`/v1/subjects/:name`), never the path, so names do not become series. */
  requestFinished(request: { method: string; route: string; status: number; ms: number }): void {
    this.inFlight--;
    this.requestDuration.observe({ method: request.method, route: request.route, status: String(request.status) }, request.ms / 1000);
  }

  jobTried(kind: JobKind, outcome: JobOutcome): void {
    this.jobCounts.jobTried(kind, outcome);
  }

  jobRedelivered(): void {
    this.jobCounts.jobRedelivered();
  }

  jobDeadLettered(reason: DeadLetterReason): void {
    this.jobCounts.jobDeadLettered(reason);
  }

  instanceMarkedUnhealthy(): void {
    this.jobCounts.instanceMarkedUnhealthy();
  }

  /** Counted where the controller runs (roles/controller/controller.ts). */
  instancesReplaced(reason: "unhealthy" | "no_progress", count: number): void {
    this.instancesReplacedTotal.inc({ reason }, count);
  }

  /** The controller's drain (roles/controller/dead-letters.ts): counted where it runs, not per app instance. */
  deadLetterDealtWith(outcome: "redriven" | "failed"): void {
    this.deadLetters.inc({ outcome });
  }

  /** The reports the controller read of the active app instances (none: no instance is active). */
  jobReportsRead(reports: JobReport[]): void {
    this.reportedJobCounts = reports.flatMap((report) => (report.counts ? [{ instance: report.instanceId, counts: report.counts }] : []));
  }

  private jobCountSeries(): { labels: { instance?: string }; counts: JobCounts }[] {
    if (this.jobCountsSource === "this-process") return [{ labels: {}, counts: this.jobCounts.counts() }];
    return this.reportedJobCounts.map(({ instance, counts }) => ({ labels: { instance }, counts }));
  }

  /** Stage times in milliseconds, as a reply carries them. A stage of 0 ms did not run (the analysis came from the cache). */
  stagesTimed(timingsMs: Record<string, number>): void {
    for (const [stage, ms] of Object.entries(timingsMs)) if (ms > 0) this.stageDuration.observe({ stage }, ms / 1000);
  }

  fleetObserved(queue: QueueDepth, instances: AppInstance[]): void {
    const counts = Object.fromEntries(INSTANCE_STATES.map((state) => [state, 0])) as Record<InstanceState, number>;
    for (const { state } of instances) if (state !== "terminated") counts[state]++;
    this.fleet = { queue, instances: counts };
  }

  /** The controller's last observation, if this process runs it. */
  lastFleetObservation(): FleetObservation | undefined {
    return this.fleet;
  }

  /** Zeros in a process that holds no gallery. */
  gallerySize(): GallerySize {
    return this.gallery?.() ?? { subjects: 0, faces: 0 };
  }

  /** Where the gallery gauges read from when scraped: the web role's gallery (counts it keeps, nothing listed). */
  readGalleryFrom(size: () => GallerySize): void {
    this.gallery = size;
  }
}
