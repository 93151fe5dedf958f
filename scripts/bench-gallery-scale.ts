/**
 * The gallery at a size, through the service's API: it starts (by default) `bun index.ts` (every role in one process, a
 * temporary data directory, a random loopback port), fills the gallery with N synthetic faces through the NDJSON
 * import (128-d unit vectors, 3 a subject, clustered round the subject's own direction), then measures
 * - enrollment of a real photo (tests/fixtures/people; the analysis cache off, so each runs the models) through
 *   `POST /v1/subjects/{name}/faces`, W writers at once;
 * - the bytes of the gallery objects those enrollments add or rewrite (in the data directory's file bucket);
 * - search (`POST /v1/search` with an embedding) and a listing page (`GET /v1/subjects?page=…`);
 * - an app instance's cold load and its catch-up after the enrollments: a GalleryReader in this process over the same
 *   bucket, as roles/gallery-store.ts reads it, counting the bytes read;
 * - the service's RSS from /proc, after one recognition (`POST /`) so the app role holds the gallery. Embedded, the
 *   web and app roles are one process: both figures are that process's.
 * With --region, the web and the app role run in processes of their own on the emulated region (scripts/service-processes.ts),
 * the gallery in its S3: the bytes are S3 objects, the reader reads over S3, and each process has its own RSS.
 * With --one-request-import, the fill is one streamed import request of all N lines (maxImportBytes bounds it), not one
 * request a segment; either way the fill's time and the web process's peak RSS until its end (VmHWM) are reported.
 *   bun run scripts/bench-gallery-scale.ts --faces N [--writers W] [--enrolls E] [--searches S] [--region] [--one-request-import]
 * Last line: one JSON object.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { ChildProcess } from "node:child_process";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { S3BlobStore } from "../roles/cloud/aws/s3-bucket.ts";
import { countingBucket } from "../roles/cloud/counting-bucket.ts";
import { FileBucket, fileNameFor } from "../roles/cloud/local/file-bucket.ts";
import type { Bucket } from "../roles/cloud/types.ts";
import { loadConfig, resourceNames } from "../roles/config.ts";
import { GALLERY_PREFIX } from "../roles/deployment.ts";
import { GalleryReader, SEGMENT_FACES } from "../roles/gallery-store.ts";
import { startGroup, startSplitService, stopGroup, waitForHealth } from "./service-processes.ts";

const { values: args } = parseArgs({
  options: {
    faces: { type: "string", default: "1000" },
    writers: { type: "string", default: "2" },
    enrolls: { type: "string", default: "40" },
    searches: { type: "string", default: "200" },
    /** The split setup: web and app processes on the emulated region (roles enforced), the gallery in its S3. */
    region: { type: "boolean", default: false },
    "one-request-import": { type: "boolean", default: false },
    port: { type: "string", default: String(20000 + Math.floor(Math.random() * 40000)) },
  },
});
const faces = Number(args.faces);
const writers = Number(args.writers);
const enrolls = Number(args.enrolls);
const searches = Number(args.searches);
if (![faces, writers, enrolls, searches].every((n) => Number.isInteger(n) && n > 0)) {
  console.error("usage: bun run scripts/bench-gallery-scale.ts --faces N [--writers W] [--enrolls E] [--searches S] [--region] [--one-request-import] [--port P]");
  process.exit(2);
}
const DIMENSIONS = 128;
const FACES_PER_SUBJECT = 3;
const PEOPLE = join(import.meta.dir, "..", "tests", "fixtures", "people");

const unit = (v: Float32Array) => {
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
};
const randomUnit = () => unit(Float32Array.from({ length: DIMENSIONS }, () => Math.random() - 0.5));
/** A face of a subject: its direction, moved a little, so a subject's faces cluster as a real person's do. */
const nearby = (center: Float32Array) => unit(center.map((x) => x + (Math.random() - 0.5) * 0.05));
const subjectName = (index: number) => `subject-${index}`;

/** The import's NDJSON lines (no newline) of faces `first` to `end` - 1, 3 a subject, rounded to 5 decimals. */
function* faceLines(first: number, end: number): Generator<string> {
  let center = randomUnit();
  for (let i = first; i < end; i++) {
    if (i % FACES_PER_SUBJECT === 0) center = randomUnit();
    const embedding = Array.from(nearby(center), (x) => round(x, 5));
    yield JSON.stringify({ subject: subjectName(Math.floor(i / FACES_PER_SUBJECT)), embedding, source: `synthetic-${i}` });
  }
}

/** All `count` lines as one chunked body, made as it is read: `bytes()` counts what has gone. */
function streamedLines(count: number) {
  const lines = faceLines(0, count);
  const encoder = new TextEncoder();
  let bytes = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const batch: string[] = [];
      for (let next = lines.next(); !next.done; next = lines.next()) if (batch.push(`${next.value}\n`) === 256) break;
      if (batch.length === 0) return controller.close();
      const chunk = encoder.encode(batch.join(""));
      bytes += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  return { body, bytes: () => bytes };
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const round = (x: number, places = 1) => Math.round(x * 10 ** places) / 10 ** places;

const port = Number(args.port);
const url = `http://127.0.0.1:${port}`;
const token = crypto.randomUUID();
const settings = { NODE_ENV: "production", FACEFLEET_PORT: String(port), FACEFLEET_HOST: "127.0.0.1", FACEFLEET_API_TOKEN: token, FACEFLEET_ANALYSIS_CACHE_ENTRIES: "0" };
const authorization = { authorization: `Bearer ${token}` };

/** A gallery object's size, and what changes when it is rewritten (its time, its ETag). */
type ObjectStates = Map<string, { size: number; version: string }>;

/** The service under measure: its processes, and the gallery's storage as they see it. */
interface Deployment {
  processes: ChildProcess[];
  /** The web and the app role's processes (the same one, embedded). */
  web: ChildProcess;
  app: ChildProcess;
  /** The gallery bucket, for a reader in this process. */
  galleryBucket: Bucket;
  galleryObjects(): Promise<ObjectStates>;
  stop(): Promise<void>;
}

/** `bun index.ts`, every role in one process, the gallery in its data directory's file bucket. */
function embedded(): Deployment {
  const dataDir = mkdtempSync(join(tmpdir(), "bench-gallery-scale-"));
  const env = { ...settings, FACEFLEET_DATA_DIR: dataDir };
  const bucketName = resourceNames(loadConfig({ ...process.env, ...env })).galleryBucket;
  const service = startGroup(["bun", "index.ts"], env, "inherit");
  return {
    processes: [service],
    web: service,
    app: service,
    galleryBucket: new FileBucket(dataDir, bucketName),
    async galleryObjects() {
      const folder = join(dataDir, fileNameFor(bucketName));
      const objects: ObjectStates = new Map();
      for (const name of readdirSync(folder).filter((file) => file.startsWith(fileNameFor(GALLERY_PREFIX)))) {
        const { size, mtimeMs } = statSync(join(folder, name));
        objects.set(decodeURIComponent(name), { size, version: String(mtimeMs) });
      }
      return objects;
    },
    async stop() {
      await stopGroup(service);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The web and the app role in processes of their own on the emulated region, the gallery in its S3. */
async function onRegion(): Promise<Deployment> {
  const split = await startSplitService({ settings, prefix: `scale${process.pid}`, webRoles: "web", output: { web: "inherit", app: "inherit" } });
  const bucketName = resourceNames(loadConfig({ ...process.env, ...split.env })).galleryBucket;
  const s3 = new S3Client({ ...split.region.clientConfig, endpoint: split.region.endpoints.s3, forcePathStyle: true });
  return {
    processes: [split.web, split.app],
    web: split.web,
    app: split.app,
    galleryBucket: new S3BlobStore(s3).bucket(bucketName),
    async galleryObjects() {
      const objects: ObjectStates = new Map();
      let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: bucketName, Prefix: GALLERY_PREFIX, ContinuationToken: token }));
        for (const object of page.Contents ?? []) objects.set(object.Key!, { size: object.Size ?? 0, version: object.ETag ?? "" });
        token = page.NextContinuationToken;
      } while (token);
      return objects;
    },
    async stop() {
      s3.destroy();
      await split.stop();
    },
  };
}

/** The objects written or rewritten since `before` (an object is written whole), with their sizes. */
function writtenSince(before: ObjectStates, after: ObjectStates): { key: string; size: number }[] {
  const written: { key: string; size: number }[] = [];
  for (const [key, object] of after) {
    const old = before.get(key);
    if (!old || old.size !== object.size || old.version !== object.version) written.push({ key, size: object.size });
  }
  return written;
}

/** What was written besides log entries (a compaction's segments and manifest), by kind: `segments/: 2 objects, 123 bytes`. */
function besidesTheLog(written: { key: string; size: number }[]): string {
  const kinds = new Map<string, { objects: number; bytes: number }>();
  for (const { key, size } of written) {
    const kind = key.slice(GALLERY_PREFIX.length).replace(/\/.*$/, "/");
    if (kind === "log/") continue;
    const sum = kinds.get(kind) ?? { objects: 0, bytes: 0 };
    kinds.set(kind, { objects: sum.objects + 1, bytes: sum.bytes + size });
  }
  return [...kinds].map(([kind, { objects, bytes }]) => `${kind}: ${objects} object${objects === 1 ? "" : "s"}, ${bytes} bytes`).join("; ") || "nothing";
}

const statusMb = (child: ChildProcess, field: "VmRSS" | "VmHWM") => round(Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))![1]) / 1024);
const rssMb = (child: ChildProcess) => statusMb(child, "VmRSS");

const deployment = args.region ? await onRegion() : embedded();

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${url}${path}`, { ...init, headers: { ...authorization, ...init.headers } });
}

try {
  await waitForHealth(url, deployment.processes);

  // Fill: one import request of every line, or one a segment's worth of lines.
  const webBaselineMb = rssMb(deployment.web);
  let started = performance.now();
  const importLines = async (body: string | ReadableStream<Uint8Array>, count: number) => {
    const response = await call("/v1/gallery/import", { method: "POST", body, headers: { "content-type": "application/x-ndjson" } });
    const summary = (await response.json()) as { imported?: number; refused?: number };
    if (!response.ok || summary.imported !== count) throw new Error(`import: HTTP ${response.status} ${JSON.stringify(summary)}`);
  };
  let importRequests = 0;
  let importBytes = 0;
  if (args["one-request-import"]) {
    const lines = streamedLines(faces);
    await importLines(lines.body, faces);
    importRequests = 1;
    importBytes = lines.bytes();
  } else {
    const lines = faceLines(0, faces);
    for (let first = 0; first < faces; first += SEGMENT_FACES, importRequests++) {
      const segment: string[] = [];
      for (let next = lines.next(); !next.done; next = lines.next()) if (segment.push(next.value) === SEGMENT_FACES) break;
      const body = segment.join("\n");
      await importLines(body, segment.length);
      importBytes += body.length;
    }
  }
  const fillSeconds = (performance.now() - started) / 1000;
  const fillPeakWebMb = statusMb(deployment.web, "VmHWM");
  console.log(
    `filled ${faces} faces (${Math.ceil(faces / FACES_PER_SUBJECT)} subjects) through the import in ${round(fillSeconds)} s: ${importRequests} request(s), ${round(importBytes / 1e6)} MB; web process ${webBaselineMb} MB before, peak ${fillPeakWebMb} MB`,
  );

  // Enrollment of real photos (tests/fixtures/people); one first, untimed: the first inference pays for the models' first run.
  const photos = readdirSync(PEOPLE)
    .sort()
    .flatMap((person) => readdirSync(join(PEOPLE, person)).sort().map((file) => join(PEOPLE, person, file)))
    .filter((path) => /\.jpe?g$/i.test(path));
  const photoBytes = await Promise.all(photos.map((path) => Bun.file(path).bytes()));
  const enrollOnce = async (index: number): Promise<number | "contended"> => {
    const form = new FormData();
    form.append("image", new File([photoBytes[index % photoBytes.length]!], `photo-${index}.jpg`, { type: "image/jpeg" }));
    const begun = performance.now();
    const response = await call(`/v1/subjects/enrolled-${index}/faces?face=largest`, { method: "POST", body: form });
    const body = await response.text();
    if (response.status === 503 && body.includes("gallery_contended")) return "contended";
    if (!response.ok) throw new Error(`enrollment ${index}: HTTP ${response.status} ${body}`);
    return performance.now() - begun;
  };
  await enrollOnce(enrolls);

  // An app instance's cold load of the filled gallery.
  const { bucket, counts } = countingBucket(deployment.galleryBucket, GALLERY_PREFIX);
  const reader = new GalleryReader(bucket, 0);
  started = performance.now();
  if ((await reader.current())?.faceCount(subjectName(0)) !== FACES_PER_SUBJECT) throw new Error("the reader did not load the gallery");
  const coldStartS = (performance.now() - started) / 1000;
  const coldBytes = counts.read;
  console.log(`app instance cold load: ${round(coldBytes / 1e6)} MB read in ${round(coldStartS, 2)} s`);

  // Enrollment, `writers` at once.
  const before = await deployment.galleryObjects();
  const latencies: number[] = [];
  let contendedErrors = 0;
  let next = 0;
  started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < enrolls) {
        const outcome = await enrollOnce(next++);
        if (outcome === "contended") contendedErrors++;
        else latencies.push(outcome);
      }
    }),
  );
  const enrollSeconds = (performance.now() - started) / 1000;
  const written = writtenSince(before, await deployment.galleryObjects());
  const writtenPerEnroll = written.reduce((sum, { size }) => sum + size, 0) / enrolls;
  latencies.sort((a, b) => a - b);
  console.log(`${enrolls} enrollments, ${writers} writers: p50 ${round(percentile(latencies, 50))} ms, p99 ${round(percentile(latencies, 99))} ms, ${round(enrolls / enrollSeconds, 2)}/s; ${round(writtenPerEnroll)} gallery bytes written each (besides log entries: ${besidesTheLog(written)}); ${contendedErrors} contended`);

  // The app instance catches up with them: what each enrollment costs every app instance to read.
  const readBefore = counts.read;
  started = performance.now();
  if ((await reader.current())?.faceCount(`enrolled-${enrolls - 1}`) !== 1) throw new Error("the reader did not catch up with the enrollments");
  const readPerEnroll = (counts.read - readBefore) / enrolls;
  console.log(`app instance catch-up after them: ${round(readPerEnroll)} bytes read per enrollment, ${round(performance.now() - started)} ms in all`);

  // Search, one at a time, for a face of a random subject.
  const searchMs: number[] = [];
  for (let i = 0; i < searches; i++) {
    const body = JSON.stringify({ embedding: Array.from(randomUnit()) });
    const begun = performance.now();
    const response = await call("/v1/search", { method: "POST", body, headers: { "content-type": "application/json" } });
    if (!response.ok) throw new Error(`search: HTTP ${response.status} ${await response.text()}`);
    await response.arrayBuffer();
    searchMs.push(performance.now() - begun);
  }
  searchMs.sort((a, b) => a - b);

  // A listing page, spread over the gallery: the median of 20.
  const subjects = Math.ceil(faces / FACES_PER_SUBJECT);
  const firstPage = (await (await call("/v1/subjects?page=1")).json()) as { size: number };
  const pages = Math.max(1, Math.ceil(subjects / firstPage.size));
  const listMs: number[] = [];
  for (let i = 0; i < 20; i++) {
    const begun = performance.now();
    const response = await call(`/v1/subjects?page=${1 + Math.floor((i / 20) * pages)}`);
    if (!response.ok) throw new Error(`listing: HTTP ${response.status} ${await response.text()}`);
    await response.arrayBuffer();
    listMs.push(performance.now() - begun);
  }
  listMs.sort((a, b) => a - b);

  // One recognition, so the app role holds the gallery when its memory is read.
  const form = new FormData();
  form.append("inputFile", new File([photoBytes[0]!], "photo.jpg", { type: "image/jpeg" }));
  const recognized = await fetch(`${url}/`, { method: "POST", body: form });
  if (!recognized.ok) throw new Error(`recognition: HTTP ${recognized.status} ${await recognized.text()}`);
  const rss = { web: rssMb(deployment.web), app: rssMb(deployment.app) };
  const memory = args.region ? `RSS: web process ${rss.web} MB, app process ${rss.app} MB` : `service RSS ${rss.web} MB (embedded: web and app roles are one process)`;
  console.log(`search p50 ${round(percentile(searchMs, 50), 2)} ms, p99 ${round(percentile(searchMs, 99), 2)} ms; listing page ${round(percentile(listMs, 50), 2)} ms; ${memory}`);
  console.log(
    JSON.stringify({
      faces,
      fill_s: round(fillSeconds),
      import_requests: importRequests,
      import_mb: round(importBytes / 1e6),
      fill_peak_web_rss_mb: fillPeakWebMb,
      enroll_p50_ms: round(percentile(latencies, 50)),
      enroll_p99_ms: round(percentile(latencies, 99)),
      enrolls_per_s: round(enrolls / enrollSeconds, 2),
      s3_bytes_written_per_enroll: Math.round(writtenPerEnroll),
      s3_bytes_read_per_enroll_per_instance: Math.round(readPerEnroll),
      search_p50_ms: round(percentile(searchMs, 50), 2),
      search_p99_ms: round(percentile(searchMs, 99), 2),
      list_page_ms: round(percentile(listMs, 50), 2),
      app_cold_start_s: round(coldStartS, 3),
      web_rss_mb: rss.web,
      app_rss_mb: rss.app,
      contended_errors: contendedErrors,
    }),
  );
} finally {
  await deployment.stop();
}
