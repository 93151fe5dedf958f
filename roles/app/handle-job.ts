/** One job, start to finish: image from the input bucket, analysis, gallery match, result to the output bucket, reply. */
import { GalleryFormatError, type Gallery } from "../../model/gallery.ts";
import { ImageError, type ImageAnalysis } from "../../model/types.ts";
import type { ImageSource, OpenSetThreshold } from "../../model/index.ts";
import type { Bucket } from "../cloud/types.ts";
import { apiResultKey, embeddingKey, MAX_JOB_MESSAGE_BYTES } from "../deployment.ts";
import type { FaceReport, FaceResult, FacesOptions, FacesResult, FailedReply, JobMessage, ReplyMessage, SearchResult } from "../messages.ts";
import type { AnalysisCache } from "./analysis-cache.ts";
import { chooseEnrollmentFace, detectedLargestFirst } from "./enrollment.ts";
import type { GalleryReader } from "../gallery-store.ts";
import type { Logger } from "../log.ts";

export interface ImageAnalyzer {
  /**
   * `image` is how to read the image: a pool reads it only once a worker can take it, so jobs waiting for the pool do
   * not hold their images. An aborted signal abandons the image (a pool replaces the worker that had it).
   */
  analyze(image: ImageSource, signal?: AbortSignal): Promise<ImageAnalysis>;
}

export interface JobDependencies {
  analyzer: ImageAnalyzer;
  cache: AnalysisCache;
  gallery: GalleryReader;
  inBucket: Bucket;
  outBucket: Bucket;
  galleryBucket: Bucket;
  /** Similarity at or above which a face counts as its nearest subject in open-set mode, for the gallery's size. */
  threshold: OpenSetThreshold;
}

const UNKNOWN_PERSON = "Unknown";

class InputMissingError extends Error {
  override name = "InputMissingError";
}

/**
 * Returns the reply to send. Throws only on faults worth a retry (storage unreachable and the like). A decoder's
 * detail of a refused image goes to `log`, never into the reply.
 */
export async function handleJob(job: JobMessage, deps: JobDependencies, log: Logger, signal?: AbortSignal): Promise<ReplyMessage> {
  const started = performance.now();
  const fail = (code: string, message: string): FailedReply => ({ ok: false, jobId: job.jobId, error: { code, message } });

  const readInput = async () => {
    const image = await deps.inBucket.get(job.inputKey);
    if (!image) throw new InputMissingError(`no object ${job.inputKey} in the input bucket`);
    return image;
  };
  /** The gallery the job must see, or the answer when the stored one is damaged. */
  const galleryOrRefusal = async (): Promise<{ gallery: Gallery | undefined } | { refusal: FailedReply }> => {
    try {
      return { gallery: await deps.gallery.current(job.galleryVersion) };
    } catch (error) {
      // The stored gallery is damaged: no instance could do better, so this is an answer, not a fault of this one.
      if (error instanceof GalleryFormatError) return { refusal: fail("gallery_unreadable", "the stored gallery cannot be read: an object of it is damaged and must be restored") };
      throw error;
    }
  };
  if (job.kind === "search") {
    const bytes = await deps.inBucket.get(job.inputKey);
    if (!bytes) return fail("input_missing", `no object ${job.inputKey} in the input bucket`);
    if (bytes.byteLength === 0 || bytes.byteLength % 4 !== 0) return fail("invalid_embedding", "the embedding is not a whole number of float32 values");
    const embedding = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const found = await galleryOrRefusal();
    if ("refusal" in found) return found.refusal;
    const { gallery } = found;
    if (gallery && gallery.size > 0 && gallery.dimensions !== embedding.length) {
      return fail("wrong_dimensions", `the embedding has ${embedding.length} dimensions; the gallery's have ${gallery.dimensions}`);
    }
    const candidates = gallery && gallery.size > 0 ? gallery.search(embedding, job.search?.k ?? 1).map(({ subject, similarity }) => ({ subject, similarity: rounded(4)(similarity) })) : [];
    return inlineOrStored<SearchResult>(job.jobId, { candidates }, deps);
  }
  let analysis: ImageAnalysis;
  let cached: boolean;
  try {
    const found = await deps.cache.analysis(job.sha256, (abandon) => deps.analyzer.analyze(readInput, abandon), signal);
    analysis = found.analysis;
    cached = !found.computed;
  } catch (error) {
    if (error instanceof ImageError) {
      if (error.detail !== undefined) log.info("image_refused", { jobId: job.jobId, code: error.code, detail: error.detail });
      return fail(error.code, error.message);
    }
    if (error instanceof InputMissingError) return fail("input_missing", error.message);
    throw error;
  }
  if (job.kind === "faces") {
    const options = job.faces ?? { k: 0, maxFaces: 20, minScore: 0, embedding: false };
    return answerFaces(job.jobId, job.galleryVersion, options, analysis, cached, started, deps);
  }
  if (job.kind === "embed") {
    const choice = chooseEnrollmentFace(analysis.faces, job.enrollFace ?? "single");
    if ("refusal" in choice) return fail(choice.refusal, choice.message);
    const key = embeddingKey(job.jobId);
    await deps.galleryBucket.put(key, float32Bytes(choice.face.embedding));
    return { ok: true, jobId: job.jobId, faces: analysis.faces.length, embeddingKey: key };
  }

  const found = await galleryOrRefusal();
  if ("refusal" in found) return found.refusal;
  const { gallery } = found;
  if (!gallery || gallery.size === 0) return fail("no_subjects_enrolled", "nobody is enrolled yet: add faces with POST /v1/subjects/{name}/faces");

  const threshold = deps.threshold.at(gallery.subjectCount);
  // Detected faces only, the classic answer's (the largest) first. An image with none is answered Unknown: the nearest
  // subject to the whole image would name someone for any picture at all, and let anyone walk the gallery. None of the
  // course's photos needs the whole image (BlazeFace finds a face in all ten distinct crops of face_images_100 and 1000).
  const results: FaceResult[] = detectedLargestFirst(analysis.faces).map((face) => {
    const [best] = gallery.search(face.embedding, 1);
    const known = best !== undefined && best.similarity >= threshold;
    return {
      box: [face.box.x, face.box.y, face.box.width, face.box.height],
      score: face.score,
      wholeImage: face.wholeImage,
      person: best?.subject,
      similarity: best?.similarity,
      known,
    };
  });
  const main = results[0];
  const person = main && (job.mode === "closed" || main.known) ? (main.person ?? UNKNOWN_PERSON) : UNKNOWN_PERSON;
  await deps.outBucket.put(job.name, person, { contentType: "text/plain", metadata: { result: resultRecord(results, main ? 0 : undefined, analysis, threshold) } });
  return { ok: true, jobId: job.jobId, person, faces: results.length };
}

const float32Bytes = (vector: Float32Array) => new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
const rounded = (digits: number) => (x: number) => Math.round(x * 10 ** digits) / 10 ** digits;
const tenths = rounded(1);
const thousandths = rounded(3);

/** Every detected face, largest first, with its candidates when asked, and the largest's similarity to a subject when asked. */
async function answerFaces(
  jobId: string,
  /** The gallery version the job must see. */
  galleryVersion: number | undefined,
  options: FacesOptions,
  analysis: ImageAnalysis,
  cached: boolean,
  started: number,
  deps: JobDependencies,
): Promise<ReplyMessage> {
  const matchStarted = performance.now();
  const faces = detectedLargestFirst(analysis.faces)
    .filter((face) => face.score >= options.minScore)
    .slice(0, options.maxFaces);
  const held = options.k > 0 || options.subject !== undefined ? await deps.gallery.current(galleryVersion) : undefined;
  const gallery = options.k > 0 ? held : undefined;
  const reports: FaceReport[] = faces.map((face) => ({
    box: { x: tenths(face.box.x), y: tenths(face.box.y), width: tenths(face.box.width), height: tenths(face.box.height) },
    score: thousandths(face.score),
    landmarks: face.landmarks.map(([x, y]) => [tenths(x), tenths(y)] as [number, number]),
    quality: { sharpness: thousandths(face.quality.sharpness), brightness: thousandths(face.quality.brightness), size: tenths(face.quality.size) },
    candidates:
      gallery && gallery.size > 0
        ? gallery.search(face.embedding, options.k).map(({ subject, similarity }) => ({ subject, similarity: rounded(4)(similarity) }))
        : [],
  }));
  const stage = (ms: number) => (cached ? 0 : thousandths(ms));
  const { decodeMs, detectMs, alignMs, embedMs } = analysis.timings;
  const largest = faces[0];
  const subjectSimilarity = options.subject !== undefined && largest && held ? held.subjectSimilarity(options.subject, largest.embedding) : undefined;
  // 1:N for recognition, held to the false-alarm target for the gallery's size; 1:1 (a verification) without one.
  const subjects = gallery?.subjectCount ?? 1;
  const result: FacesResult = {
    width: analysis.width,
    height: analysis.height,
    threshold: deps.threshold.at(subjects),
    ...(deps.threshold.farAt ? { far: deps.threshold.farAt(subjects) } : {}),
    faces: reports,
    ...(options.embedding && largest ? { embedding: Buffer.from(float32Bytes(largest.embedding)).toString("base64") } : {}),
    ...(subjectSimilarity !== undefined ? { subjectSimilarity } : {}),
    timings: {
      decode: stage(decodeMs),
      detect: stage(detectMs),
      align: stage(alignMs),
      embed: stage(embedMs),
      match: thousandths(performance.now() - matchStarted),
      total: thousandths(performance.now() - started),
    },
  };
  return inlineOrStored(jobId, result, deps);
}

/**
 * The reply carries the result when it fits in a job-sized message and holds no embedding; otherwise the result goes
 * to the output bucket and the reply carries its key.
 */
async function inlineOrStored<T extends FacesResult | SearchResult>(jobId: string, result: T, deps: Pick<JobDependencies, "outBucket">): Promise<{ ok: true; jobId: string; result: T } | { ok: true; jobId: string; resultKey: string }> {
  const inline = { ok: true as const, jobId, result };
  // An embedding never travels in a queue message, however small: queues keep what they hold for days.
  if (!("embedding" in result && result.embedding !== undefined) && Buffer.byteLength(JSON.stringify(inline)) <= MAX_JOB_MESSAGE_BYTES) return inline;
  const resultKey = apiResultKey(jobId);
  await deps.outBucket.put(resultKey, JSON.stringify(result), { contentType: "application/json" });
  return { ok: true, jobId, resultKey };
}

/** S3 allows 2 KB of user metadata in all; the record keeps clear of it with room for the key's name. */
const RECORD_MAX_BYTES = 1900;

/**
 * The JSON record stored with each result (URI-encoded, as S3 metadata must be ASCII): as many faces as fit,
 * the classic answer's face first.
 */
export function resultRecord(faces: FaceResult[], main: number | undefined, analysis: ImageAnalysis, threshold: number): string {
  const round = (x: number) => Math.round(x * 1000) / 1000;
  const first = main === undefined ? [] : [faces[main]!];
  const ordered = [...first, ...faces.filter((_, index) => index !== main)].map((face) => ({
    ...face,
    box: face.box.map(Math.round),
    score: round(face.score),
    similarity: face.similarity && round(face.similarity),
  }));
  const timingsMs = Object.fromEntries(Object.entries(analysis.timings).map(([stage, ms]) => [stage, round(ms)]));
  for (let kept = ordered.length; ; kept--) {
    const encoded = encodeURIComponent(JSON.stringify({ faces: ordered.slice(0, kept), faceCount: faces.length, threshold, timingsMs }));
    if (encoded.length <= RECORD_MAX_BYTES || kept === 0) return encoded;
  }
}
