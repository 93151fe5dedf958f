/**
 * Scaffolding for the web role's plugin tests: images made here with sharp (no datasets), a logger that keeps its
 * lines, and the web role's storage and queues on the local stand-ins with a fake app instance answering jobs.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { Elysia, type AnyElysia } from "elysia";
import sharp from "sharp";
import { FileBlobStore } from "../../roles/cloud/local/file-bucket.ts";
import { MemoryQueueService } from "../../roles/cloud/local/memory-queue.ts";
import type { Bucket, JobQueue, QueueService } from "../../roles/cloud/types.ts";
import { GalleryWriter } from "../../roles/gallery-store.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";
import { captureLogs, type LogCapture } from "../support/logs.ts";
import type { Logger } from "../../roles/log.ts";
import {
  decodeMessage,
  JobMessageSchema,
  type Candidate,
  type FaceReport,
  type FacesOptions,
  type FacesResult,
  type JobKind,
  type JobMessage,
  type ReplyMessage,
  type SuccessfulReplyTo,
} from "../../roles/messages.ts";
import { imageInspector } from "../../roles/start.ts";
import { ApiKeyStore } from "../../roles/web/api-key-store.ts";
import { createJobSubmitter, searchInputKey, type JobInput, type JobOptions, type JobSubmitter } from "../../roles/web/jobs.ts";
import { ReplyPoller } from "../../roles/web/reply-poller.ts";
import { accessPolicy } from "../../roles/web/access.ts";
import { bearerGuard } from "../../roles/web/bearer.ts";
import { errorMapping } from "../../roles/web/errors.ts";
import { requestTarget } from "../../roles/web/request-target.ts";
import { createWebServer, type UploadPools } from "../../roles/web/server.ts";
import { createUploadReader, type Upload, type UploadLimits, type UploadReader } from "../../roles/web/upload.ts";
import { decodeImage } from "../../model/decode.ts";
import { ModelConfigSchema, operatingPointsFor, type FarCalibration, type ModelConfig } from "../../model/index.ts";
import { ImageError } from "../../model/types.ts";

export { captureLogs };

const solid = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: "#7a5" } });

/** A JPEG of random pixels: it does not compress away, so its bytes are mostly scan data after the header. */
export async function noiseJpeg(width: number, height: number, quality = 90): Promise<Uint8Array> {
  const pixels = new Uint8Array(width * height * 3);
  // getRandomValues fills at most 64 KiB a call.
  for (let offset = 0; offset < pixels.length; offset += 65536) crypto.getRandomValues(pixels.subarray(offset, offset + 65536));
  return new Uint8Array(await sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality }).toBuffer());
}

/** One image of each kind roles/web/README.md's "Bad input" paragraph names, and the three formats that are taken. */
export async function testImages() {
  const jpeg = new Uint8Array(await solid(32, 24).jpeg().toBuffer());
  const noise = await noiseJpeg(64, 64);
  return {
    jpeg,
    png: new Uint8Array(await solid(32, 24).png().toBuffer()),
    webp: new Uint8Array(await solid(32, 24).webp().toBuffer()),
    gif: new Uint8Array(await solid(8, 8).gif().toBuffer()),
    /** Cut inside its header: the web role refuses it itself. */
    truncated: jpeg.subarray(0, Math.floor(jpeg.length / 2)),
    /** Cut in its pixel data, header whole: only a full decode (the app's) finds it. */
    truncatedAfterHeader: noise.subarray(0, Math.floor(noise.length * 0.7)),
    empty: new Uint8Array(),
    notAnImage: new TextEncoder().encode("this is not a picture at all"),
    bomb: await pngClaiming(100_000, 100_000),
  };
}

/** A small PNG whose header claims a huge size: the shape of a decompression bomb, without its payload. */
export async function pngClaiming(width: number, height: number): Promise<Uint8Array> {
  const png = new Uint8Array(await solid(1, 1).png().toBuffer());
  const view = new DataView(png.buffer);
  // IHDR data starts at byte 16 (8-byte signature, 4-byte length, 4-byte type); its CRC follows its 13 bytes.
  view.setUint32(16, width);
  view.setUint32(20, height);
  view.setUint32(29, Bun.hash.crc32(png.subarray(12, 29)));
  return png;
}

export function multipart(field: string, bytes: Uint8Array | string, fileName: string, type = "image/jpeg"): FormData {
  const form = new FormData();
  form.append(field, new File([bytes], fileName, { type }));
  return form;
}

/** A request for `app.handle` (Elysia routes on the path after the host, so the host is a real-looking one). */
export function request(path: string, init: RequestInit = {}): Request {
  return new Request(`http://localhost${path}`, init);
}

/** The limits of the tests' upload readers, unless a test says otherwise: small files, generous times. */
export const TEST_UPLOAD_LIMITS: UploadLimits = {
  maxFileBytes: 256 * 1024,
  maxBodyBytes: 4 * 1024 * 1024,
  concurrentBodies: 4,
  perClient: 4,
  slotWaitMs: 5_000,
  maxQueued: 100,
  bodyTimeoutMs: 5_000,
  pace: { minBytesPerSecond: 0, graceMs: 0 },
};

/** The gallery import's bound in the tests, unless a test says otherwise: past the upload limits' body bound. */
export const TEST_MAX_IMPORT_BYTES = 64 * 1024 * 1024;

/** The upload reader over `bucket` (a fresh folder by default) with the model's real header inspector. */
export function testUploadReader(limits: Partial<UploadLimits> = {}, bucket: Bucket = new FileBlobStore(mkdtempSync(join(tmpdir(), "facefleet-uploads-"))).bucket("in")): UploadReader {
  return createUploadReader({ bucket, inspect: imageInspector(40_000_000), limits: { ...TEST_UPLOAD_LIMITS, ...limits } });
}

/** The web server's two upload pools (the classic route's, the API's) over one bucket. */
export function testUploadReaders(limits: Partial<UploadLimits> = {}, bucket?: Bucket): UploadPools {
  return { classic: testUploadReader(limits, bucket), api: testUploadReader(limits, bucket) };
}

/** Answers jobs as an app instance would: `answer` decides the reply to each job it takes. */
export type FakeApp = (job: JobMessage, buckets: { out: Bucket }) => ReplyMessage | Promise<ReplyMessage>;

const recognizeAs =
  (person: string): FakeApp =>
  (job) =>
    job.kind === "recognize"
      ? { ok: true, jobId: job.jobId, person, faces: 1 }
      : job.kind === "search"
        ? { ok: true, jobId: job.jobId, result: { candidates: [{ subject: person, similarity: 0.5 }] } }
        : { ok: true, jobId: job.jobId, faces: 1, embeddingKey: `embeddings/${job.jobId}.f32` };

export interface WebHarness {
  app: ReturnType<typeof createWebServer>;
  logs: LogCapture;
  inBucket: Bucket;
  outBucket: Bucket;
  galleryBucket: Bucket;
  requestQueue: JobQueue;
  gallery: GalleryWriter;
  metrics: ServiceMetrics;
  /** The recognition keys, stored in the input bucket as the web role stores them. */
  keys: ApiKeyStore;
  jobsTaken: JobMessage[];
  stop(): Promise<void>;
}

export const TOKEN = "a-test-token";
/** The calibrated false accept rates of the default embedder, as the service has them. */
export const DEFAULT_OPERATING_POINTS = operatingPointsFor(Value.Default(ModelConfigSchema, {}) as ModelConfig);
export const AUTH = { authorization: `Bearer ${TOKEN}` };

/** A feature's plugin behind what the server puts in front of it: the error mapping, the request-target check, the bearer guard (token TOKEN). */
export function guarded<P extends AnyElysia>(plugin: P, options: { log: Logger; classicAuth?: boolean }) {
  return new Elysia()
    .use(errorMapping(options.log))
    .use(requestTarget)
    .use(bearerGuard({ policy: accessPolicy({ classicAuth: options.classicAuth ?? false }), token: () => TOKEN, keys: { verify: () => undefined }, routes: () => plugin.routes }))
    .use(plugin);
}

/**
 * The whole HTTP surface over files in a temporary folder and in-memory queues, with the real job submitter and reply
 * poller, the model's real image inspector, and a fake app instance (by default: everyone is "Paul"; an embed job
 * leaves a 4-d embedding in the gallery bucket).
 */
export async function startWebHarness(
  options: { answer?: FakeApp; limits?: Partial<UploadLimits>; maxImportBytes?: number; classicAuth?: boolean; timeoutMs?: number; galleryBucket?: Bucket; keyRefreshMs?: number; operatingPoints?: FarCalibration } = {},
): Promise<WebHarness> {
  const blobs = new FileBlobStore(mkdtempSync(join(tmpdir(), "facefleet-web-")));
  const queues = new MemoryQueueService({ visibilityTimeoutSeconds: 30, maxReceives: 3, deadLetterQueue: "dlq" });
  const inBucket = blobs.bucket("in");
  const galleryBucket = options.galleryBucket ?? blobs.bucket("gallery");
  const requestQueue = queues.queue("requests");
  const logs = captureLogs();
  const poller = new ReplyPoller(queues.queue("replies"), logs.logger);
  const gallery = await GalleryWriter.open(galleryBucket);
  const outBucket = blobs.bucket("out");
  const jobs = createJobSubmitter({ inBucket, outBucket, requestQueue, replyQueueName: "replies", poller, timeoutMs: options.timeoutMs ?? 10_000, mode: "closed", galleryVersion: () => gallery.version });
  const jobsTaken: JobMessage[] = [];
  const abort = new AbortController();
  const fakeApp = answerJobs({ queues, requestQueue, inBucket, outBucket, galleryBucket, jobsTaken, signal: abort.signal, answer: options.answer, decode: true });
  poller.start();
  const metrics = new ServiceMetrics();
  metrics.readGalleryFrom(() => gallery.size);
  const keys = await ApiKeyStore.open(inBucket, logs.logger, options.keyRefreshMs);
  const app = createWebServer({
    jobs,
    gallery,
    keys,
    uploads: testUploadReaders(options.limits, inBucket),
    maxImportBytes: options.maxImportBytes ?? TEST_MAX_IMPORT_BYTES,
    log: logs.logger,
    metrics,
    token: () => TOKEN,
    classicAuth: options.classicAuth ?? false,
    operatingPoints: options.operatingPoints ?? DEFAULT_OPERATING_POINTS,
    classicRateLimit: 0,
    trustProxy: false,
    health: () => ({ role: "web" }),
  });
  return {
    app,
    logs,
    inBucket,
    outBucket,
    galleryBucket,
    requestQueue,
    gallery,
    metrics,
    keys,
    jobsTaken,
    async stop() {
      keys.stop();
      abort.abort();
      await fakeApp;
      await poller.stop();
    },
  };
}

/**
 * A fake app instance until `signal` aborts: takes each job, refuses an image its full decode rejects when `decode`
 * (as `handleJob` does), else answers with `answer` (everyone is "Paul"; an embed job leaves a 4-d embedding).
 */
export async function answerJobs(deps: {
  queues: QueueService;
  requestQueue: JobQueue;
  inBucket: Bucket;
  outBucket: Bucket;
  galleryBucket: Bucket;
  signal: AbortSignal;
  answer?: FakeApp;
  decode: boolean;
  jobsTaken?: JobMessage[];
}): Promise<void> {
  const answer = deps.answer ?? recognizeAs("Paul");
  while (!deps.signal.aborted) {
    const messages = await deps.requestQueue.receive({ maxMessages: 10, waitSeconds: 1, signal: deps.signal }).catch(() => []);
    for (const message of messages) {
      const job = decodeMessage(JobMessageSchema, message.body);
      deps.jobsTaken?.push(job);
      const reply = (deps.decode && job.kind !== "search" ? await imageRefusal(job, deps.inBucket) : undefined) ?? (await answer(job, { out: deps.outBucket }));
      if (reply.ok && "embeddingKey" in reply) await deps.galleryBucket.put(reply.embeddingKey, new Uint8Array(new Float32Array([1, 0, 0, 0]).buffer));
      await deps.queues.queue(job.replyTo).send(JSON.stringify(reply));
      await deps.requestQueue.delete(message.receiptHandle);
    }
  }
}

/** The refusal an app instance sends for an image its full decode rejects (a truncated scan, say), as `handleJob` does. */
async function imageRefusal(job: JobMessage, inBucket: Bucket): Promise<ReplyMessage | undefined> {
  try {
    await decodeImage((await inBucket.get(job.inputKey)) ?? new Uint8Array(), 40_000_000);
    return undefined;
  } catch (error) {
    if (error instanceof ImageError) return { ok: false, jobId: job.jobId, error: { code: error.code, message: error.message } };
    throw error;
  }
}

export interface Submission {
  jobId: string;
  kind: JobKind;
  upload: JobInput & Partial<Upload>;
  options?: JobOptions;
}

/** One face as an app instance reports it: a 100 px box at (10, 20) by default, matched to the given candidates. */
export function faceReport(candidates: Candidate[] = [], box = { x: 10, y: 20, width: 100, height: 120 }): FaceReport {
  const { x, y, width } = box;
  return {
    box,
    score: 0.99,
    landmarks: [
      [x + width * 0.3, y + 40],
      [x + width * 0.7, y + 40],
      [x + width * 0.5, y + 60],
      [x + width * 0.35, y + 85],
      [x + width * 0.65, y + 85],
    ],
    quality: { sharpness: 0.8, brightness: 0.5, size: Math.min(box.width, box.height) },
    candidates,
  };
}

/** A faces job's result on a 400x300 image. */
export function facesResult(faces: FaceReport[], extra: Partial<FacesResult> = {}): FacesResult {
  return { width: 400, height: 300, threshold: 0.9, faces, timings: { decode: 1, detect: 2, align: 3, embed: 4, match: 0.5, total: 11 }, ...extra };
}

const PAUL = [{ subject: "Paul", similarity: 0.95 }];

/**
 * A job submitter that stores nothing and asks no app: it records each submission and answers from `answer` (faces
 * jobs from `facesAnswer`, searches from `searchAnswer`), which may throw what the real submitter throws
 * (JobRefusedError, JobTimeoutError, a storage fault).
 */
export function fakeJobs(
  answer: (kind: JobKind, jobId: string) => SuccessfulReplyTo<JobKind> = (kind, jobId) =>
    kind === "recognize" ? { ok: true, jobId, person: "Paul", faces: 1 } : { ok: true, jobId, faces: 1, embeddingKey: `embeddings/${jobId}.f32` },
  facesAnswer: (options: FacesOptions, jobId: string, upload: Upload) => FacesResult | Promise<FacesResult> = () => facesResult([faceReport(PAUL)]),
  searchAnswer: (embedding: Float32Array, k: number) => Candidate[] | Promise<Candidate[]> = () => [],
) {
  const submitted: Submission[] = [];
  const jobs: JobSubmitter = {
    async submit<K extends JobKind>(jobId: string, kind: K, upload: JobInput, options?: JobOptions) {
      submitted.push({ jobId, kind, upload, ...(options ? { options } : {}) });
      return answer(kind, jobId) as SuccessfulReplyTo<K>;
    },
    async faces(jobId, upload, options) {
      submitted.push({ jobId, kind: "faces", upload, options: { faces: options } });
      return facesAnswer(options, jobId, upload);
    },
    async search(jobId, embedding, k) {
      submitted.push({ jobId, kind: "search", upload: { key: searchInputKey(jobId), name: "embedding", sha256: "" }, options: { search: { k } } });
      return searchAnswer(embedding, k);
    },
  };
  return { jobs, submitted };
}
