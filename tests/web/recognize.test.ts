// The recognize plugin on its own: a fake job submitter (no model, no datasets), the real error mapping.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import type { FarCalibration } from "../../model/index.ts";
import { FileBlobStore } from "../../roles/cloud/local/file-bucket.ts";
import { RecognizeAnswerSchema, recognizeApi } from "../../roles/web/recognize.ts";
import { AUTH, captureLogs, faceReport, facesResult, fakeJobs, guarded, multipart, request, testImages, testUploadReader } from "./support.ts";

let images: Awaited<ReturnType<typeof testImages>>;
beforeAll(async () => {
  images = await testImages();
});

const PAUL = { subject: "Paul", similarity: 0.95 };
const JOHN = { subject: "John", similarity: 0.6 };
/** Paul's 0.95 is the match at 1e-2 and at the app's 0.9, not at 1e-3. */
const POINTS: FarCalibration = [
  [1e-2, 0.5],
  [1e-3, 0.97],
];

function recognizer(result = facesResult([faceReport([PAUL, JOHN]), faceReport([JOHN], { x: 200, y: 50, width: 40, height: 48 })])) {
  const { jobs, submitted } = fakeJobs(undefined, () => result);
  const uploadBucket = new FileBlobStore(mkdtempSync(join(tmpdir(), "facefleet-recognize-"))).bucket("in");
  const app = guarded(recognizeApi({ jobs, uploads: testUploadReader({ maxFileBytes: 64 * 1024 }, uploadBucket), operatingPoints: POINTS }), { log: captureLogs().logger });
  const recognize = (query = "", form = multipart("image", images.jpeg, "a.jpg"), headers: Record<string, string> = AUTH) =>
    app.handle(request(`/v1/recognize${query}`, { method: "POST", body: form, headers }));
  return { recognize, submitted, uploadBucket };
}

describe("POST /v1/recognize", () => {
  test("every face with its box, ratio, landmarks, match and candidates, in the schema the issue spells", async () => {
    const { recognize, submitted } = recognizer();
    const response = await recognize();
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(Value.Check(RecognizeAnswerSchema, body)).toBe(true);
    expect(body).toEqual({
      requestId: response.headers.get("x-request-id")!,
      width: 400,
      height: 300,
      threshold: 0.9,
      far: null,
      faces: [
        {
          box: { x: 10, y: 20, width: 100, height: 120 },
          boxRatio: { left: 0.025, top: 0.0667, width: 0.25, height: 0.4 },
          score: 0.99,
          landmarks: expect.any(Array),
          match: PAUL,
          candidates: [PAUL, JOHN],
        },
        expect.objectContaining({ match: null, candidates: [JOHN] }),
      ],
      timings: { decode: 1, detect: 2, align: 3, embed: 4, match: 0.5, queue: expect.any(Number), total: expect.any(Number) },
    });
    expect(submitted[0]!.options).toEqual({ faces: { k: 3, maxFaces: 20, minScore: 0, embedding: false } });
  });

  test("closed mode always names the nearest subject; k, maxFaces and minScore go to the app", async () => {
    const { recognize, submitted } = recognizer();
    const body = (await (await recognize("?mode=closed&k=5&maxFaces=2&minScore=0.5")).json()) as { faces: { match: unknown }[] };
    expect(body.faces.map((face) => face.match)).toEqual([PAUL, JOHN]);
    expect(submitted[0]!.options).toEqual({ faces: { k: 5, maxFaces: 2, minScore: 0.5, embedding: false } });
  });

  test("far picks a calibrated threshold, which decides the match and is answered with its rate; without far, the app's", async () => {
    const { recognize, submitted } = recognizer();
    const matches = async (query: string) => {
      const body = (await (await recognize(query)).json()) as { threshold: number; far: number | null; faces: { match: unknown }[] };
      return { threshold: body.threshold, far: body.far, matches: body.faces.map((face) => face.match) };
    };
    expect(await matches("")).toEqual({ threshold: 0.9, far: null, matches: [PAUL, null] });
    expect(await matches("?far=0.001")).toEqual({ threshold: 0.97, far: 0.001, matches: [null, null] });
    // The same rate however it is written.
    expect(await matches("?far=1e-2")).toEqual({ threshold: 0.5, far: 0.01, matches: [PAUL, JOHN] });
    expect(await matches("?far=1E-2")).toEqual({ threshold: 0.5, far: 0.01, matches: [PAUL, JOHN] });
    // The app's far, when its threshold was calibrated, is answered as it came.
    const calibrated = recognizer(facesResult([faceReport([PAUL])], { threshold: 0.9305, far: 0.001 }));
    expect(await (await calibrated.recognize()).json()).toMatchObject({ threshold: 0.9305, far: 0.001 });
    // The job is the same whatever the far: the web role applies the threshold.
    expect(new Set(submitted.map((submission) => JSON.stringify(submission.options))).size).toBe(1);
  });

  test("no face: 200 with faces []", async () => {
    const { recognize } = recognizer(facesResult([]));
    const response = await recognize();
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ faces: [] });
  });

  describe("numbers in the query: one spelling each, anything else 400 invalid_parameter naming the parameter, no job, nothing stored", () => {
    const integer = (name: string, maximum: number) => `invalid query parameter '${name}': it takes an integer from 1 to ${maximum}, in decimal digits`;
    const decimal = "it takes a number from 0 to 1, written as decimal digits with an optional point and exponent (0.001, .001, 1e-3)";
    // What `Number()` (Elysia's coercion) reads as a number, or as one in bounds, and a stranger would send.
    const notIntegers = ["1e1", "0x10", "%205", "5%20", "", "1.0", "-0", "-1", "%2B5", "05", "Infinity", "NaN", "99999999999999999999", "1_000", "0", "0b1", "%EF%BC%95"];
    const notScores = ["0x0", "%200.5", "0.5%20", "", "-0", "%2B0.5", "Infinity", "NaN", "1_0", "1.5", "2", "1e1", "0.5.5", "e-3", "0,5", "1e-3x"];
    const refused: [string, string][] = [
      ...notIntegers.map((value): [string, string] => [`?k=${value}`, integer("k", 20)]),
      ["?k=21", integer("k", 20)],
      ...notIntegers.map((value): [string, string] => [`?maxFaces=${value}`, integer("maxFaces", 100)]),
      ["?maxFaces=101", integer("maxFaces", 100)],
      ...notScores.map((value): [string, string] => [`?minScore=${value}`, `invalid query parameter 'minScore': ${decimal}`]),
    ];
    test.each(refused)("%s", async (query, message) => {
      const { recognize, submitted, uploadBucket } = recognizer();
      const response = await recognize(query);
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({ error: "invalid_parameter", message, requestId: expect.any(String) });
      expect(submitted).toEqual([]);
      expect(await uploadBucket.count()).toBe(0);
    });

    const accepted: [string, { k: number; maxFaces: number; minScore: number }][] = [
      ["?k=1&maxFaces=1&minScore=0", { k: 1, maxFaces: 1, minScore: 0 }],
      ["?k=20&maxFaces=100&minScore=1", { k: 20, maxFaces: 100, minScore: 1 }],
      ["?minScore=.5", { k: 3, maxFaces: 20, minScore: 0.5 }],
      ["?minScore=5e-1", { k: 3, maxFaces: 20, minScore: 0.5 }],
      ["?minScore=0.50", { k: 3, maxFaces: 20, minScore: 0.5 }],
      ["?minScore=1.", { k: 3, maxFaces: 20, minScore: 1 }],
    ];
    test.each(accepted)("%s is read as written", async (query, faces) => {
      const { recognize, submitted } = recognizer();
      expect((await recognize(query)).status).toBe(200);
      expect(submitted.map((submission) => submission.options)).toEqual([{ faces: { ...faces, embedding: false } }]);
    });
  });

  describe("bad input: a 4xx with its code, and no job", () => {
    const cases: [string, string, () => FormData, number, string][] = [
      ["k over 20", "?k=21", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["k not a number", "?k=three", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["unknown mode", "?mode=fuzzy", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["maxFaces 0", "?maxFaces=0", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["minScore above 1", "?minScore=2", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["a far that was not calibrated", "?far=0.005", () => multipart("image", images.jpeg, "a.jpg"), 400, "uncalibrated_far"],
      ["a far near a calibrated one", "?far=0.0010001", () => multipart("image", images.jpeg, "a.jpg"), 400, "uncalibrated_far"],
      ["far 0", "?far=0", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["far 1", "?far=1", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["far negative", "?far=-0.001", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["far not a number", "?far=low", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["far empty", "?far=", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["far NaN", "?far=NaN", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["no image field", "", () => multipart("inputFile", images.jpeg, "a.jpg"), 400, "missing_field"],
      ["not an image", "", () => multipart("image", images.notAnImage, "a.jpg"), 400, "not_an_image"],
      ["GIF", "", () => multipart("image", images.gif, "a.gif", "image/gif"), 415, "unsupported_format"],
    ];
    for (const [what, query, form, status, code] of cases) {
      test(what, async () => {
        const { recognize, submitted, uploadBucket } = recognizer();
        const response = await recognize(query, form());
        expect(response.status).toBe(status);
        expect(await response.json()).toMatchObject({ error: code });
        expect(submitted).toEqual([]);
        expect(await uploadBucket.count()).toBe(0);
      });
    }

    test("an uncalibrated far is told the calibrated ones; an embedder without a calibration refuses every far", async () => {
      const { recognize } = recognizer();
      expect(await (await recognize("?far=0.005")).json()).toMatchObject({ error: "uncalibrated_far", message: "far 0.005 is not a calibrated operating point; calibrated: 0.01, 0.001" });
      const { jobs, submitted } = fakeJobs();
      const uncalibrated = guarded(recognizeApi({ jobs, uploads: testUploadReader(), operatingPoints: [] }), { log: captureLogs().logger });
      const response = await uncalibrated.handle(request("/v1/recognize?far=0.001", { method: "POST", body: multipart("image", images.jpeg, "a.jpg"), headers: AUTH }));
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: "uncalibrated_far", message: expect.stringContaining("has none") });
      expect(submitted).toEqual([]);
    });

    test("no token: 401", async () => {
      const { recognize, submitted } = recognizer();
      const response = await recognize("", multipart("image", images.jpeg, "a.jpg"), {});
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: "unauthorized" });
      expect(submitted).toEqual([]);
    });
  });
});
