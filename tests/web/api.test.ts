// detect, verify, search and the subjects routes over the real gallery writer (files in a temporary folder) and a fake
// job submitter: answers, bad input (each a 4xx with its code), and nothing stored when refused. No model, no datasets.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import type { FarCalibration } from "../../model/index.ts";
import { FileBucket } from "../../roles/cloud/local/file-bucket.ts";
import { GalleryReader, GalleryWriter } from "../../roles/gallery-store.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";
import type { FacesResult, JobKind, SuccessfulReplyTo } from "../../roles/messages.ts";
import { DetectAnswerSchema } from "../../roles/web/detect.ts";
import { JobRefusedError } from "../../roles/web/jobs.ts";
import { ApiKeyStore } from "../../roles/web/api-key-store.ts";
import { createWebServer } from "../../roles/web/server.ts";
import { SubjectFacesSchema, SubjectListSchema } from "../../roles/web/subjects.ts";
import { SubjectVerifyAnswerSchema, VerifyAnswerSchema } from "../../roles/web/verify.ts";
import type { UploadLimits } from "../../roles/web/upload.ts";
import { AUTH, captureLogs, faceReport, facesResult, fakeJobs, request, testImages, TEST_MAX_IMPORT_BYTES, testUploadReaders } from "./support.ts";

let images: Awaited<ReturnType<typeof testImages>>;
beforeAll(async () => {
  images = await testImages();
});

const base64 = (vector: number[]) => Buffer.from(new Float32Array(vector).buffer).toString("base64");
/** The embedding the fake app gives each uploaded file, by its name. */
const EMBEDDINGS: Record<string, number[]> = { "ada.jpg": [1, 0, 0, 0], "ada2.jpg": [0.96, 0.28, 0, 0], "bob.jpg": [0, 1, 0, 0] };

/** Calibrated rates of the service under test: ada and ada2 (0.96) are the same person at 1e-2, not at 1e-3. */
const OPERATING_POINTS: FarCalibration = [
  [1e-2, 0.5],
  [1e-3, 0.97],
  [1e-4, 0.995],
];

/** Refusals the fake app gives, by file name (as the app role would for an enrollment). */
const REFUSALS: Record<string, string> = { "empty.jpg": "no_face", "group.jpg": "multiple_faces", "tiny.jpg": "face_too_small", "blur.jpg": "low_quality" };

/** The upload reader's bucket, recording each object it finished storing (a store abandoned part way is not one). */
class RecordingBucket extends FileBucket {
  readonly stored: string[] = [];
  override async putStream(...args: Parameters<FileBucket["putStream"]>): Promise<void> {
    await super.putStream(...args);
    this.stored.push(args[0]);
  }
  override async put(...args: Parameters<FileBucket["put"]>): Promise<void> {
    await super.put(...args);
    this.stored.push(args[0]);
  }
}

const FILE_LIMIT = 64 * 1024;

async function api(limits: Partial<UploadLimits> = {}) {
  const uploadBucket = new RecordingBucket(mkdtempSync(join(tmpdir(), "facefleet-api-uploads-")), "in");
  const bucket = new FileBucket(mkdtempSync(join(tmpdir(), "facefleet-api-")), "gallery");
  const gallery = await GalleryWriter.open(bucket);
  // The app instance's view of the gallery: it searches, and scores a face against a subject, as the app role does.
  const reader = new GalleryReader(bucket, 0);
  const { jobs, submitted } = fakeJobs(
    (_kind: JobKind, jobId: string) => ({ ok: true, jobId, faces: 1, embeddingKey: `embeddings/${jobId}.f32` }) as SuccessfulReplyTo<JobKind>,
    async (options, _jobId, upload): Promise<FacesResult> => {
      const file = `${upload.name}.jpg`;
      if (!EMBEDDINGS[file]) return facesResult([]);
      const embedding = new Float32Array(EMBEDDINGS[file]!);
      const subjectSimilarity = options.subject === undefined ? undefined : (await reader.current())?.subjectSimilarity(options.subject, embedding);
      return facesResult([faceReport(), faceReport([], { x: 300, y: 10, width: 30, height: 30 })].slice(0, options.maxFaces), {
        ...(options.embedding ? { embedding: base64(EMBEDDINGS[file]!) } : {}),
        ...(subjectSimilarity !== undefined ? { subjectSimilarity } : {}),
      });
    },
    async (embedding, k) => {
      const held = await reader.current();
      return held && held.size > 0 ? held.search(embedding, k).map(({ subject, similarity }) => ({ subject, similarity: Math.round(similarity * 10_000) / 10_000 })) : [];
    },
  );
  const submit = jobs.submit;
  jobs.submit = async (jobId, kind, upload, options) => {
    const refusal = REFUSALS[`${upload.name}.jpg`];
    if (refusal) throw new JobRefusedError(refusal, `refused: ${refusal}`);
    await bucket.put(`embeddings/${jobId}.f32`, new Uint8Array(new Float32Array(EMBEDDINGS[`${upload.name}.jpg`] ?? [1, 0, 0, 0]).buffer));
    return submit(jobId, kind, upload, options);
  };
  const app = createWebServer({
    jobs,
    gallery,
    keys: await ApiKeyStore.open(bucket, captureLogs().logger),
    uploads: testUploadReaders({ maxFileBytes: FILE_LIMIT, ...limits }, uploadBucket),
    maxImportBytes: TEST_MAX_IMPORT_BYTES,
    log: captureLogs().logger,
    metrics: new ServiceMetrics(),
    token: () => "a-test-token",
    classicAuth: false,
    operatingPoints: OPERATING_POINTS,
    classicRateLimit: 0,
    trustProxy: false,
    health: () => ({}),
  });
  const call = (method: string, path: string, body?: FormData | object) =>
    app.handle(
      request(path, {
        method,
        headers: body && !(body instanceof FormData) ? { ...AUTH, "content-type": "application/json" } : AUTH,
        body: body instanceof FormData ? body : body ? JSON.stringify(body) : undefined,
      }),
    );
  const form = (...parts: [string, string][]) => {
    const data = new FormData();
    for (const [field, name] of parts) data.append(field, new File([images.jpeg], name, { type: "image/jpeg" }));
    return data;
  };
  const enroll = (name: string, ...files: string[]) => call("POST", `/v1/subjects/${name}/faces`, form(...files.map((file): [string, string] => ["image", file])));
  return { app, call, form, enroll, gallery, submitted, bucket, uploadBucket };
}

/** `image` followed by zeros up to `bytes`: the header inspector reads only the start, so it stays a valid JPEG. */
function padded(image: Uint8Array, bytes: number): Uint8Array {
  const file = new Uint8Array(bytes);
  file.set(image);
  return file;
}

async function expectError(response: Response, status: number, code: string) {
  expect(response.status).toBe(status);
  expect(await response.json()).toEqual({ error: code, message: expect.any(String), requestId: expect.any(String) });
}

describe("POST /v1/detect", () => {
  test("faces with box, ratio, landmarks and quality; no matching asked for", async () => {
    const { call, form, submitted } = await api();
    const response = await call("POST", "/v1/detect?maxFaces=1", form(["image", "ada.jpg"]));
    const body = (await response.json()) as { faces: unknown[] };
    expect(Value.Check(DetectAnswerSchema, body)).toBe(true);
    expect(body.faces).toEqual([expect.objectContaining({ box: faceReport().box, quality: faceReport().quality })]);
    expect(submitted[0]!.options).toEqual({ faces: { k: 0, maxFaces: 1, minScore: 0, embedding: false } });
  });

  test("bad input: missing image 400, bad maxFaces 400", async () => {
    const { call, form, submitted } = await api();
    await expectError(await call("POST", "/v1/detect", form(["file", "ada.jpg"])), 400, "missing_field");
    await expectError(await call("POST", "/v1/detect?maxFaces=1000", form(["image", "ada.jpg"])), 400, "invalid_parameter");
    expect(submitted).toEqual([]);
  });

  test("maxFaces and minScore only as written plainly: 0x10, 1e1, a space, 1.0, -0 refused naming the parameter, no job", async () => {
    const { call, form, submitted, uploadBucket } = await api();
    for (const query of ["maxFaces=0x10", "maxFaces=1e1", "maxFaces=%205", "maxFaces=1.0", "maxFaces=", "maxFaces=99999999999999999999", "minScore=-0", "minScore=Infinity", "minScore=0x0", "minScore=%20.5"]) {
      const response = await call("POST", `/v1/detect?${query}`, form(["image", "ada.jpg"]));
      expect([query, response.status]).toEqual([query, 400]);
      const name = query.split("=")[0]!;
      expect(await response.json()).toMatchObject({ error: "invalid_parameter", message: expect.stringMatching(new RegExp(`^invalid query parameter '${name}': it takes (an integer from 1 to 100|a number from 0 to 1)`)) });
    }
    expect([submitted, await uploadBucket.count()]).toEqual([[], 0]);
  });
});

describe("POST /v1/verify", () => {
  test("same person above the threshold, with both largest faces' boxes", async () => {
    const { call, form } = await api();
    const body = await (await call("POST", "/v1/verify", form(["image1", "ada.jpg"], ["image2", "ada2.jpg"]))).json();
    expect(Value.Check(VerifyAnswerSchema, body)).toBe(true);
    expect(body).toEqual({ same: true, similarity: 0.96, threshold: 0.9, far: null, faces: { image1: faceReport().box, image2: faceReport().box } });
    const other = await (await call("POST", "/v1/verify", form(["image1", "ada.jpg"], ["image2", "bob.jpg"]))).json();
    expect(other).toMatchObject({ same: false, similarity: 0 });
  });

  test("no face in one image: 422 no_face naming it; a missing image: 400", async () => {
    const { call, form } = await api();
    const response = await call("POST", "/v1/verify", form(["image1", "ada.jpg"], ["image2", "nobody.jpg"]));
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({ error: "no_face", message: "no face found in image2" });
    await expectError(await call("POST", "/v1/verify", form(["image1", "ada.jpg"])), 400, "missing_field");
  });

  test("against a subject: scored as search scores it (its template); an unknown subject 404 before any job", async () => {
    const { call, form, enroll, submitted } = await api();
    await enroll("Ada", "ada.jpg");
    await enroll("Ada", "ada2.jpg");
    await enroll("Bob", "bob.jpg");
    const body = await (await call("POST", "/v1/subjects/Ada/verify", form(["image", "ada.jpg"]))).json();
    expect(Value.Check(SubjectVerifyAnswerSchema, body)).toBe(true);
    // Ada's template is the normalised mean of (1, 0) and (0.96, 0.28): (0.9899, 0.1414).
    expect(body).toEqual({ subject: "Ada", same: true, similarity: 0.9899, threshold: 0.9, far: null, face: faceReport().box });
    expect(await (await call("POST", "/v1/subjects/Bob/verify", form(["image", "ada.jpg"]))).json()).toMatchObject({ same: false, similarity: 0 });
    const jobs = submitted.length;
    await expectError(await call("POST", "/v1/subjects/Nobody/verify", form(["image", "ada.jpg"])), 404, "unknown_subject");
    await expectError(await call("POST", "/v1/subjects/Ada/verify", form(["image", "nobody.jpg"])), 422, "no_face");
    expect(submitted.length).toBe(jobs + 1);
  });
});

describe("far: the operating point of a verification", () => {
  test("a calibrated far decides same with its threshold, both answered; the jobs are those of a verification without it", async () => {
    const { call, form, enroll, submitted } = await api();
    const verify = async (query: string) => (await (await call("POST", `/v1/verify${query}`, form(["image1", "ada.jpg"], ["image2", "ada2.jpg"]))).json()) as Record<string, unknown>;
    expect(await verify("?far=0.01")).toMatchObject({ same: true, similarity: 0.96, threshold: 0.5, far: 0.01 });
    expect(await verify("?far=1e-3")).toMatchObject({ same: false, similarity: 0.96, threshold: 0.97, far: 0.001 });
    const body = await verify("?far=0.0001");
    expect(Value.Check(VerifyAnswerSchema, body)).toBe(true);
    await enroll("Ada", "ada.jpg");
    await enroll("Ada", "ada2.jpg");
    const againstAda = async (query: string) => (await (await call("POST", `/v1/subjects/Ada/verify${query}`, form(["image", "ada.jpg"]))).json()) as Record<string, unknown>;
    expect(await againstAda("?far=0.001")).toMatchObject({ same: true, similarity: 0.9899, threshold: 0.97, far: 0.001 });
    const strict = await againstAda("?far=0.0001");
    expect(strict).toMatchObject({ same: false, similarity: 0.9899, threshold: 0.995, far: 0.0001 });
    expect(Value.Check(SubjectVerifyAnswerSchema, strict)).toBe(true);
    const verifications = submitted.filter((submission) => submission.kind === "faces");
    expect(new Set(verifications.map((submission) => JSON.stringify(submission.options)))).toEqual(
      new Set([JSON.stringify({ faces: { k: 0, maxFaces: 1, minScore: 0, embedding: true } }), JSON.stringify({ faces: { k: 0, maxFaces: 1, minScore: 0, embedding: false, subject: "Ada" } })]),
    );
  });

  test("a far not calibrated: 400 uncalibrated_far naming the calibrated ones, before the subject is looked up, no job, nothing stored", async () => {
    const { call, form, enroll, submitted, uploadBucket } = await api();
    await enroll("Ada", "ada.jpg");
    const [jobs, stored] = [submitted.length, uploadBucket.stored.length];
    for (const path of ["/v1/verify?far=0.005", "/v1/subjects/Ada/verify?far=0.005", "/v1/subjects/Nobody/verify?far=0.005"]) {
      const response = await call("POST", path, path.startsWith("/v1/verify") ? form(["image1", "ada.jpg"], ["image2", "ada2.jpg"]) : form(["image", "ada.jpg"]));
      expect(response.status, path).toBe(400);
      expect(await response.json()).toMatchObject({ error: "uncalibrated_far", message: "far 0.005 is not a calibrated operating point; calibrated: 0.01, 0.001, 0.0001" });
    }
    await expectError(await call("POST", "/v1/verify?far=2", form(["image1", "ada.jpg"], ["image2", "ada2.jpg"])), 400, "invalid_parameter");
    expect([submitted.length, uploadBucket.stored.length]).toEqual([jobs, stored]);
  });
});

describe("POST /v1/search", () => {
  test("candidates by subject, best first; the embedding is normalised; nobody enrolled: none", async () => {
    const { call, enroll } = await api();
    expect(await (await call("POST", "/v1/search", { embedding: [1, 0, 0, 0] })).json()).toEqual({ candidates: [] });
    await enroll("Ada", "ada.jpg");
    await enroll("Ada", "ada2.jpg");
    await enroll("Bob", "bob.jpg");
    expect(await (await call("POST", "/v1/search", { embedding: [2, 0, 0, 0], k: 5 })).json()).toEqual({
      candidates: [
        { subject: "Ada", similarity: 0.9899 },
        { subject: "Bob", similarity: 0 },
      ],
    });
  });

  test("bad input: wrong dimension, zeros, not numbers, k out of range, not JSON", async () => {
    const { call, enroll } = await api();
    await enroll("Ada", "ada.jpg");
    await expectError(await call("POST", "/v1/search", { embedding: [1, 0, 0] }), 400, "wrong_dimensions");
    await expectError(await call("POST", "/v1/search", { embedding: [0, 0, 0, 0] }), 400, "invalid_embedding");
    await expectError(await call("POST", "/v1/search", { embedding: ["a", 0, 0, 0] }), 400, "invalid_body");
    await expectError(await call("POST", "/v1/search", { embedding: [1, 0, 0, 0], k: 99 }), 400, "invalid_body");
    // k is a JSON number: a string, even one Number() reads, is refused.
    for (const k of ["0x10", "5", " 5", "1e1"]) await expectError(await call("POST", "/v1/search", { embedding: [1, 0, 0, 0], k }), 400, "invalid_body");
    const notJson = await (await api()).app.handle(request("/v1/search", { method: "POST", body: "{embedding", headers: { ...AUTH, "content-type": "application/json" } }));
    await expectError(notJson, 400, "unreadable_body");
  });
});

describe("subjects", () => {
  test("pages of subjects by name, a subject's faces with when and from what", async () => {
    const { call, enroll } = await api();
    for (const name of ["Cy", "Ada", "Bob"]) expect((await enroll(name, "ada.jpg")).status).toBe(201);
    const page = await (await call("GET", "/v1/subjects?page=2&size=2")).json();
    expect(Value.Check(SubjectListSchema, page)).toBe(true);
    expect(page).toEqual({ subjects: [{ name: "Cy", faces: 1 }], page: 2, size: 2, total: 3 });
    const faces = await (await call("GET", "/v1/subjects/Ada")).json();
    expect(Value.Check(SubjectFacesSchema, faces)).toBe(true);
    expect(faces).toEqual({ name: "Ada", faces: [{ faceId: expect.any(String), createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), source: "ada.jpg" }] });
    await expectError(await call("GET", "/v1/subjects/Nobody"), 404, "unknown_subject");
    await expectError(await call("GET", "/v1/subjects?size=0"), 400, "invalid_parameter");
  });

  test("page and size only in decimal digits within their bounds: 400 invalid_parameter naming the parameter", async () => {
    const { call } = await api();
    const cases: [string, string][] = [
      ["page=1e1", "page"],
      ["page=0x2", "page"],
      ["page=%202", "page"],
      ["page=", "page"],
      ["page=2.0", "page"],
      ["page=-0", "page"],
      ["page=1000001", "page"],
      ["page=99999999999999999999", "page"],
      ["size=1_000", "size"],
      ["size=Infinity", "size"],
      ["size=NaN", "size"],
      ["size=1001", "size"],
      ["size=010", "size"],
    ];
    for (const [query, name] of cases) {
      const response = await call("GET", `/v1/subjects?${query}`);
      expect([query, response.status]).toEqual([query, 400]);
      const bound = name === "page" ? 1_000_000 : 1000;
      expect(await response.json()).toMatchObject({ error: "invalid_parameter", message: `invalid query parameter '${name}': it takes an integer from 1 to ${bound}, in decimal digits` });
    }
    expect(await (await call("GET", "/v1/subjects?page=1000000&size=1000")).json()).toMatchObject({ page: 1_000_000, size: 1000, subjects: [] });
  });

  test("rename; into an existing subject only with ?merge=true", async () => {
    const { call, enroll, gallery } = await api();
    await enroll("Ada", "ada.jpg");
    await enroll("Bob", "bob.jpg");
    await expectError(await call("PATCH", "/v1/subjects/Ada", { name: "Bob" }), 409, "subject_exists");
    await expectError(await call("PATCH", "/v1/subjects/Nobody", { name: "X" }), 404, "unknown_subject");
    await expectError(await call("PATCH", "/v1/subjects/Ada", { name: "a/b" }), 400, "invalid_body");
    expect(gallery.list()).toEqual([
      { subject: "Ada", faces: 1 },
      { subject: "Bob", faces: 1 },
    ]);
    expect(await (await call("PATCH", "/v1/subjects/Ada", { name: "Ada L" })).json()).toEqual({ name: "Ada L", faces: 1 });
    expect(await (await call("PATCH", "/v1/subjects/Ada%20L?merge=true", { name: "Bob" })).json()).toEqual({ name: "Bob", faces: 2 });
    expect(gallery.list()).toEqual([{ subject: "Bob", faces: 2 }]);
  });

  test("remove one face; another subject's face or an unknown one: 404", async () => {
    const { call, enroll, gallery } = await api();
    const { faceId } = (await (await enroll("Ada", "ada.jpg")).json()) as { faceId: string };
    await enroll("Ada", "ada2.jpg");
    await enroll("Bob", "bob.jpg");
    await expectError(await call("DELETE", `/v1/subjects/Bob/faces/${faceId}`), 404, "unknown_face");
    await expectError(await call("DELETE", "/v1/subjects/Ada/faces/f999"), 404, "unknown_face");
    expect(await (await call("DELETE", `/v1/subjects/Ada/faces/${faceId}`)).json()).toEqual({ subject: "Ada", faceId, faces: 1 });
    expect(gallery.facesOf("Ada").map((face) => face.source)).toEqual(["ada2.jpg"]);
  });

  describe("enrollment refusals: 422 with the reason, nothing stored", () => {
    for (const [file, code] of Object.entries(REFUSALS)) {
      test(code, async () => {
        const { enroll, gallery, bucket } = await api();
        await expectError(await enroll("Ada", file), 422, code);
        expect(gallery.list()).toEqual([]);
        expect(await bucket.count()).toBe(0);
      });
    }
  });

  test("?face=largest goes to the app; a bad value is a 400 before any job", async () => {
    const { call, form, submitted } = await api();
    expect((await call("POST", "/v1/subjects/Ada/faces?face=largest", form(["image", "ada.jpg"]))).status).toBe(201);
    expect(submitted[0]!.options).toEqual({ enrollFace: "largest" });
    await expectError(await call("POST", "/v1/subjects/Ada/faces?face=all", form(["image", "ada.jpg"])), 400, "invalid_parameter");
    expect(submitted).toHaveLength(1);
  });

  test("several image parts: answered part by part, the good ones enrolled", async () => {
    const { enroll, gallery } = await api();
    const response = await enroll("Ada", "ada.jpg", "group.jpg", "ada2.jpg");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      subject: "Ada",
      faces: 2,
      results: [
        { file: "ada.jpg", status: 201, faceId: expect.any(String) },
        { file: "group.jpg", status: 422, error: "multiple_faces", message: expect.any(String) },
        { file: "ada2.jpg", status: 201, faceId: expect.any(String) },
      ],
    });
    expect(gallery.faceCount("Ada")).toBe(2);
  });

  test("several image parts read as a stream: a part refused from its header or its size is answered on its own, the parts after it still read", async () => {
    const { call, gallery, submitted } = await api();
    const data = new FormData();
    data.append("image", new File([images.jpeg], "ada.jpg", { type: "image/jpeg" }));
    data.append("image", new File([images.notAnImage], "note.jpg", { type: "image/jpeg" }));
    data.append("image", new File([padded(images.jpeg, FILE_LIMIT + 1)], "huge.jpg", { type: "image/jpeg" }));
    data.append("image", new File([images.jpeg], "ada2.jpg", { type: "image/jpeg" }));
    const response = await call("POST", "/v1/subjects/Ada/faces", data);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { results: unknown[] }).results).toEqual([
      { file: "ada.jpg", status: 201, faceId: expect.any(String) },
      { file: "note.jpg", status: 400, error: "not_an_image", message: expect.any(String) },
      { file: "huge.jpg", status: 413, error: "file_too_large", message: expect.any(String) },
      { file: "ada2.jpg", status: 201, faceId: expect.any(String) },
    ]);
    expect(submitted.map((submission) => submission.upload.fileName)).toEqual(["ada.jpg", "ada2.jpg"]);
    expect(gallery.faceCount("Ada")).toBe(2);
  });

  describe("the file limit is per file, the body bound for the whole body", () => {
    /** `count` photos of `bytes` each (a JPEG padded past its end), as one enrollment's parts. */
    const photos = (count: number, bytes: number) => {
      const data = new FormData();
      for (let i = 0; i < count; i++) data.append("image", new File([padded(images.jpeg, bytes)], `photo${i}.jpg`, { type: "image/jpeg" }));
      return data;
    };
    /** The same body, sent chunked: no content-length, only the bytes as they come. */
    const chunked = async (data: FormData) => {
      const encoded = new Response(data);
      const type = encoded.headers.get("content-type")!;
      const bytes = new Uint8Array(await encoded.arrayBuffer());
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= bytes.length) return controller.close();
          controller.enqueue(bytes.subarray(sent, sent + 16 * 1024));
          sent += 16 * 1024;
        },
      });
      return { body, type, sent: () => sent };
    };

    /** The body with its content-length, as an HTTP client sends a form (a Request made from FormData has none). */
    const declared = async (data: FormData) => {
      const encoded = new Response(data);
      const type = encoded.headers.get("content-type")!;
      const body = new Uint8Array(await encoded.arrayBuffer());
      return { body, headers: { ...AUTH, "content-type": type, "content-length": String(body.byteLength) } };
    };

    test("five photos each within the file limit, together well past it: every one enrolled", async () => {
      const { app, gallery, uploadBucket } = await api();
      const response = await app.handle(request("/v1/subjects/Ada/faces", { method: "POST", ...(await declared(photos(5, FILE_LIMIT - 1000))) }));
      expect(response.status).toBe(200);
      expect(((await response.json()) as { results: { status: number }[] }).results.map((result) => result.status)).toEqual([201, 201, 201, 201, 201]);
      expect(gallery.faceCount("Ada")).toBe(5);
      expect(uploadBucket.stored).toHaveLength(5);
    });

    test("one photo past the file limit among good ones: 413 file_too_large for that part alone, nothing of it stored", async () => {
      const { call, gallery, uploadBucket } = await api();
      const data = photos(2, 1000);
      data.append("image", new File([padded(images.jpeg, FILE_LIMIT * 3)], "huge.jpg", { type: "image/jpeg" }));
      for (const part of photos(1, 1000).getAll("image")) data.append("image", part);
      const response = await call("POST", "/v1/subjects/Ada/faces", data);
      expect(response.status).toBe(200);
      const { results } = (await response.json()) as { results: { file: string; status: number; error?: string }[] };
      expect(results.map((result) => [result.file, result.status, result.error])).toEqual([
        ["photo0.jpg", 201, undefined],
        ["photo1.jpg", 201, undefined],
        ["huge.jpg", 413, "file_too_large"],
        ["photo0.jpg", 201, undefined],
      ]);
      expect(gallery.faceCount("Ada")).toBe(3);
      expect(uploadBucket.stored.filter((key) => key.includes("huge"))).toEqual([]);
      expect(uploadBucket.stored).toHaveLength(3);
    });

    test("a file limit below the header read (64 KiB): a photo past it, cut off within the bytes read for its header, is refused on its own and nothing of it stored", async () => {
      const { call, gallery, uploadBucket } = await api({ maxFileBytes: 8 * 1024 });
      const data = photos(1, 1000);
      data.append("image", new File([padded(images.jpeg, 20 * 1024)], "huge.jpg", { type: "image/jpeg" }));
      for (const part of photos(1, 1000).getAll("image")) data.append("image", part);
      const response = await call("POST", "/v1/subjects/Ada/faces", data);
      const { results } = (await response.json()) as { results: { file: string; status: number; error?: string }[] };
      expect(results.map((result) => [result.file, result.status, result.error])).toEqual([
        ["photo0.jpg", 201, undefined],
        ["huge.jpg", 413, "file_too_large"],
        ["photo0.jpg", 201, undefined],
      ]);
      expect(gallery.faceCount("Ada")).toBe(2);
      expect(uploadBucket.stored.filter((key) => key.includes("huge"))).toEqual([]);
    });

    test("a declared body past the body bound: 413 body_too_large before it is read, nothing stored", async () => {
      const { app, gallery, uploadBucket } = await api({ maxBodyBytes: 3 * FILE_LIMIT });
      const { headers } = await declared(photos(4, FILE_LIMIT - 1000));
      let pulled = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled++;
          controller.enqueue(new Uint8Array(16 * 1024));
        },
      });
      const response = await app.handle(request("/v1/subjects/Ada/faces", { method: "POST", body, headers }));
      await expectError(response, 413, "body_too_large");
      expect(pulled).toBeLessThanOrEqual(1);
      expect(gallery.list()).toEqual([]);
      expect(uploadBucket.stored).toEqual([]);
    });

    test("a chunked body past the body bound: 413 body_too_large once it passes it, every part refused, nothing stored", async () => {
      const { app, gallery, uploadBucket } = await api({ maxBodyBytes: 3 * FILE_LIMIT });
      const upload = await chunked(photos(4, FILE_LIMIT - 1000));
      const response = await app.handle(request("/v1/subjects/Ada/faces", { method: "POST", body: upload.body, headers: { ...AUTH, "content-type": upload.type } }));
      await expectError(response, 413, "body_too_large");
      expect(upload.sent()).toBeLessThan(4 * FILE_LIMIT);
      expect(gallery.list()).toEqual([]);
      expect(await uploadBucket.count()).toBe(0);
    });

    test("a chunked body within the body bound is read as a declared one: every part enrolled", async () => {
      const { app, gallery } = await api({ maxBodyBytes: 3 * FILE_LIMIT });
      const upload = await chunked(photos(2, FILE_LIMIT - 1000));
      const response = await app.handle(request("/v1/subjects/Ada/faces", { method: "POST", body: upload.body, headers: { ...AUTH, "content-type": upload.type } }));
      expect(response.status).toBe(200);
      expect(gallery.faceCount("Ada")).toBe(2);
    });
  });
});

test("every /v1 route needs the token: 401 with a Bearer challenge, and no job", async () => {
  const { app, form, submitted } = await api();
  const routes: [string, string][] = [
    ["POST", "/v1/recognize"],
    ["POST", "/v1/detect"],
    ["POST", "/v1/verify"],
    ["POST", "/v1/search"],
    ["GET", "/v1/subjects"],
    ["GET", "/v1/subjects/Ada"],
    ["PATCH", "/v1/subjects/Ada"],
    ["DELETE", "/v1/subjects/Ada"],
    ["DELETE", "/v1/subjects/Ada/faces/f1"],
    ["POST", "/v1/subjects/Ada/faces"],
    ["POST", "/v1/subjects/Ada/verify"],
  ];
  for (const [method, path] of routes) {
    const body = method === "POST" || method === "PATCH" ? form(["image", "ada.jpg"]) : undefined;
    const response = await app.handle(request(path, { method, body }));
    expect(response.headers.get("www-authenticate"), `${method} ${path}`).toBe('Bearer realm="facefleet"');
    await expectError(response, 401, "unauthorized");
  }
  expect(submitted).toEqual([]);
});
