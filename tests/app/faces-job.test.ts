// The app role's side of the JSON API: which face an enrollment takes (a table), and a faces job's reply (inline when
// small, through the output bucket when not), with a fake analyzer and buckets in a temporary folder.
import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Gallery } from "../../model/gallery.ts";
import { calibratedPoint, falseAlarmThreshold, fixedThreshold, type OpenSetThreshold } from "../../model/open-set.ts";
import { ImageError, type EmbeddedFace, type ImageAnalysis } from "../../model/types.ts";
import { AnalysisCache } from "../../roles/app/analysis-cache.ts";
import { chooseEnrollmentFace } from "../../roles/app/enrollment.ts";
import { handleJob } from "../../roles/app/handle-job.ts";
import { FileBlobStore } from "../../roles/cloud/local/file-bucket.ts";
import type { GalleryReader } from "../../roles/gallery-store.ts";
import { decodeMessage, FacesResultSchema, type FacesOptions, type JobMessage } from "../../roles/messages.ts";
import { captureLogs } from "../support/logs.ts";

function face(side: number, options: { x?: number; sharpness?: number; brightness?: number; wholeImage?: boolean; embedding?: number[] } = {}): EmbeddedFace {
  return {
    box: { x: options.x ?? 0, y: 0, width: side, height: side },
    score: 0.9,
    landmarks: [[1, 1], [2, 1], [1.5, 2], [1, 3], [2, 3]],
    wholeImage: options.wholeImage ?? false,
    embedding: new Float32Array(options.embedding ?? [1, 0, 0, 0]),
    quality: { sharpness: options.sharpness ?? 0.8, brightness: options.brightness ?? 0.5, size: side },
  };
}

describe("which face an enrollment takes", () => {
  const cases: [string, EmbeddedFace[], "single" | "largest", string][] = [
    ["one good face", [face(100)], "single", "enrolled"],
    ["nothing detected (the whole-image stand-in is no face)", [face(250, { wholeImage: true })], "single", "no_face"],
    ["two faces", [face(100), face(60, { x: 120 })], "single", "multiple_faces"],
    ["two faces, the largest asked for", [face(60, { x: 120 }), face(100)], "largest", "enrolled"],
    ["a 16 px face", [face(16)], "single", "face_too_small"],
    ["a 24 px face, as in the course's 64x64 crops", [face(24)], "single", "enrolled"],
    ["blurred", [face(100, { sharpness: 0.005 })], "single", "low_quality"],
    ["soft, as the course's crops are", [face(100, { sharpness: 0.02 })], "single", "enrolled"],
    ["too dark", [face(100, { brightness: 0.05 })], "single", "low_quality"],
    ["washed out", [face(100, { brightness: 0.97 })], "single", "low_quality"],
  ];
  for (const [what, faces, which, outcome] of cases) {
    test(`${what}: ${outcome}`, () => {
      const choice = chooseEnrollmentFace(faces, which);
      if (outcome === "enrolled") expect(choice).toEqual({ face: faces.reduce((a, b) => (b.box.width > a.box.width ? b : a)) });
      else expect(choice).toMatchObject({ refusal: outcome });
    });
  }
});

async function run(faces: EmbeddedFace[], options: FacesOptions, threshold: OpenSetThreshold = fixedThreshold(0.9), classic?: { mode: "open" | "closed" }, search?: { embedding?: number[]; k: number }) {
  const blobs = new FileBlobStore(mkdtempSync(join(tmpdir(), "facefleet-faces-")));
  const [inBucket, outBucket, galleryBucket] = [blobs.bucket("in"), blobs.bucket("out"), blobs.bucket("gallery")];
  await inBucket.put("j/a.jpg", new Uint8Array([1]));
  if (search?.embedding) await inBucket.put("j/embedding.f32", new Uint8Array(new Float32Array(search.embedding).buffer));
  const gallery = new Gallery(4);
  gallery.enroll("Ada", new Float32Array([1, 0, 0, 0]));
  gallery.enroll("Ada", new Float32Array([0.8, 0.6, 0, 0]));
  gallery.enroll("Bob", new Float32Array([0, 1, 0, 0]));
  const analysis: ImageAnalysis = { width: 640, height: 480, faces, timings: { decodeMs: 1, detectMs: 2, alignMs: 3, embedMs: 4 } };
  const job: JobMessage = search
    ? { kind: "search", jobId: "j", replyTo: "r", inputKey: "j/embedding.f32", name: "embedding", sha256: "0".repeat(64), mode: "open", search: { k: search.k }, galleryVersion: 7 }
    : classic
    ? { kind: "recognize", jobId: "j", replyTo: "r", inputKey: "j/a.jpg", name: "a", sha256: "0".repeat(64), mode: classic.mode, galleryVersion: 7 }
    : { kind: "faces", jobId: "j", replyTo: "r", inputKey: "j/a.jpg", name: "a", sha256: "0".repeat(64), mode: "open", faces: options, galleryVersion: 7 };
  const reply = await handleJob(job, {
    analyzer: { analyze: async () => (search ? Promise.reject(new Error("a search job analyses no image")) : analysis) },
    cache: new AnalysisCache(0),
    gallery: {
      current: async (atLeast?: number) => {
        // The job's version reaches the gallery: it must see every change up to it.
        expect(atLeast).toBe(7);
        return gallery;
      },
    } as unknown as GalleryReader,
    inBucket,
    outBucket,
    galleryBucket,
    threshold,
  }, captureLogs().logger);
  return { reply, outBucket };
}

describe("a classic job: the person of the largest detected face, never of the whole image", () => {
  const NO_FACES_OPTIONS: FacesOptions = { k: 0, maxFaces: 20, minScore: 0, embedding: false };
  const nearAda = { embedding: [1, 0, 0, 0] };
  const nearBob = { embedding: [0, 1, 0, 0] };
  const cases: [string, EmbeddedFace[], "open" | "closed", string][] = [
    ["one face, near Ada", [face(100, nearAda)], "closed", "Ada"],
    ["two faces: the larger one's", [face(60, nearAda), face(100, { x: 120, ...nearBob })], "closed", "Bob"],
    ["no face detected, the whole image near Bob (closed set)", [face(250, { wholeImage: true, ...nearBob })], "closed", "Unknown"],
    ["no face detected, the whole image near Bob (open set)", [face(250, { wholeImage: true, ...nearBob })], "open", "Unknown"],
    ["a small face near Bob beside the whole image near Ada", [face(250, { wholeImage: true, ...nearAda }), face(40, nearBob)], "closed", "Bob"],
    ["nothing at all", [], "closed", "Unknown"],
    ["open set, a face under the threshold", [face(100, { embedding: [0.6, 0.8, 0, 0] })], "open", "Unknown"],
  ];
  for (const [what, faces, mode, person] of cases) {
    test(`${what}: ${person}`, async () => {
      const { reply, outBucket } = await run(faces, NO_FACES_OPTIONS, undefined, { mode });
      expect(reply).toMatchObject({ ok: true, person });
      expect(new TextDecoder().decode((await outBucket.get("a"))!)).toBe(person);
    });
  }
});

describe("a faces job", () => {

  test("detected faces only, largest first, minScore and maxFaces applied, candidates by subject; small enough to travel inline", async () => {
    const low = { ...face(80, { x: 300 }), score: 0.3 };
    const { reply } = await run([face(50, { x: 200, embedding: [0, 1, 0, 0] }), face(250, { wholeImage: true }), low, face(120)], { k: 2, maxFaces: 2, minScore: 0.5, embedding: false });
    if (!reply.ok || !("result" in reply) || !("faces" in reply.result)) throw new Error(`expected an inline result, got ${JSON.stringify(reply)}`);
    expect(reply.result.faces.map((f) => f.box.width)).toEqual([120, 50]);
    expect(reply.result.faces[0]!.candidates).toEqual([
      { subject: "Ada", similarity: 0.9487 }, // the normalised mean of Ada's two faces
      { subject: "Bob", similarity: 0 },
    ]);
    expect(reply.result).toMatchObject({ width: 640, height: 480, threshold: 0.9, timings: { decode: 1, detect: 2, align: 3, embed: 4 } });
  });

  test("the threshold in force travels with the rate it was calibrated for: for the gallery's size when matching, for one subject when not; none when set by hand", async () => {
    const calibration = [
      [1e-2, 0.9],
      [1e-3, 0.93],
      [1e-4, 0.95],
    ] as const;
    const farOf = async (threshold: OpenSetThreshold, k: number) => {
      const { reply } = await run([face(120)], { k, maxFaces: 1, minScore: 0, embedding: false }, threshold);
      if (!reply.ok || !("result" in reply) || !("faces" in reply.result)) throw new Error(`expected an inline result, got ${JSON.stringify(reply)}`);
      return [reply.result.threshold, reply.result.far];
    };
    expect(await farOf(calibratedPoint(calibration, 1e-3), 2)).toEqual([0.93, 1e-3]);
    // Two subjects (Ada, Bob) at a 1% false-alarm target: about 0.5% a pair.
    const target = falseAlarmThreshold(calibration, 1e-2);
    expect(await farOf(target, 2)).toEqual([target.at(2), 0.00501]);
    expect(await farOf(target, 0)).toEqual([0.9, 1e-2]);
    expect(await farOf(fixedThreshold(0.9), 2)).toEqual([0.9, undefined]);
  });

  test("a subject asked for: the largest face scored against its template, the threshold still the 1:1 one; a subject without faces: no similarity", async () => {
    const calibration = [
      [1e-2, 0.9],
      [1e-3, 0.93],
    ] as const;
    const against = async (subject: string) => {
      const { reply } = await run([face(50, { x: 200, embedding: [0, 1, 0, 0] }), face(120)], { k: 0, maxFaces: 1, minScore: 0, embedding: false, subject }, falseAlarmThreshold(calibration, 1e-2));
      if (!reply.ok || !("result" in reply) || !("faces" in reply.result)) throw new Error(`expected an inline result, got ${JSON.stringify(reply)}`);
      return reply.result;
    };
    const ada = await against("Ada");
    expect(ada.subjectSimilarity).toBeCloseTo(0.9487, 4);
    expect([ada.threshold, ada.far, ada.faces[0]!.candidates]).toEqual([0.9, 1e-2, []]);
    expect((await against("Bob")).subjectSimilarity).toBe(0);
    expect(await against("Nobody")).not.toHaveProperty("subjectSimilarity");
  });

  test("a reply too large for a job-sized message: the result goes to the output bucket, the reply carries its key", async () => {
    const many = Array.from({ length: 12 }, (_, i) => face(100 - i, { x: i * 100 }));
    const { reply, outBucket } = await run(many, { k: 3, maxFaces: 20, minScore: 0, embedding: true });
    if (!reply.ok || !("resultKey" in reply)) throw new Error(`expected a result key, got ${JSON.stringify(reply)}`);
    const result = decodeMessage(FacesResultSchema, new TextDecoder().decode((await outBucket.get(reply.resultKey))!));
    expect(result.faces).toHaveLength(12);
    expect(new Float32Array(Uint8Array.from(Buffer.from(result.embedding!, "base64")).buffer)).toEqual(new Float32Array([1, 0, 0, 0]));
  });

  test("a result with an embedding never travels in the reply, however small: it goes to the output bucket", async () => {
    const { reply, outBucket } = await run([face(120)], { k: 0, maxFaces: 1, minScore: 0, embedding: true });
    if (!reply.ok || !("resultKey" in reply)) throw new Error(`expected a result key, got ${JSON.stringify(reply)}`);
    expect(JSON.stringify(reply)).not.toContain("embedding");
    const result = decodeMessage(FacesResultSchema, new TextDecoder().decode((await outBucket.get(reply.resultKey))!));
    expect(new Float32Array(Uint8Array.from(Buffer.from(result.embedding!, "base64")).buffer)).toEqual(new Float32Array([1, 0, 0, 0]));
  });

  test("a refused image: the reply has the code and a fixed message, the decoder's detail goes to the log with the job id", async () => {
    const blobs = new FileBlobStore(mkdtempSync(join(tmpdir(), "facefleet-faces-")));
    const [inBucket, outBucket, galleryBucket] = [blobs.bucket("in"), blobs.bucket("out"), blobs.bucket("gallery")];
    await inBucket.put("j/a.jpg", new Uint8Array([1]));
    const logs = captureLogs();
    const job: JobMessage = { kind: "recognize", jobId: "job-7", replyTo: "r", inputKey: "j/a.jpg", name: "a", sha256: "1".repeat(64), mode: "open" };
    const detail = "Input buffer has corrupt header: VipsJpeg: Bogus Huffman table definition";
    const reply = await handleJob(
      job,
      {
        analyzer: { analyze: async () => Promise.reject(new ImageError("undecodable", "the image cannot be decoded", detail)) },
        cache: new AnalysisCache(0),
        gallery: { current: async () => undefined } as unknown as GalleryReader,
        inBucket,
        outBucket,
        galleryBucket,
        threshold: fixedThreshold(0.9),
      },
      logs.logger,
    );
    expect(reply).toEqual({ ok: false, jobId: "job-7", error: { code: "undecodable", message: "the image cannot be decoded" } });
    expect(logs.lines).toContainEqual(expect.objectContaining({ event: "image_refused", jobId: "job-7", code: "undecodable", detail }));
  });
});

describe("a search job: the embedding from the input bucket, against the gallery at the job's version", () => {
  test("the nearest subjects, best first, similarities to 4 places; no image analysed", async () => {
    const { reply } = await run([], { k: 0, maxFaces: 1, minScore: 0, embedding: false }, undefined, undefined, { embedding: [1, 0, 0, 0], k: 5 });
    expect(reply).toEqual({
      ok: true,
      jobId: "j",
      result: {
        candidates: [
          { subject: "Ada", similarity: 0.9487 },
          { subject: "Bob", similarity: 0 },
        ],
      },
    });
  });

  test("refusals: another length than the gallery's, not whole float32 values, the input gone", async () => {
    const refusal = async (search: { embedding?: number[]; k: number }) => (await run([], { k: 0, maxFaces: 1, minScore: 0, embedding: false }, undefined, undefined, search)).reply;
    expect(await refusal({ embedding: [1, 0, 0], k: 1 })).toMatchObject({ ok: false, error: { code: "wrong_dimensions" } });
    expect(await refusal({ k: 1 })).toMatchObject({ ok: false, error: { code: "input_missing" } });
  });
});
