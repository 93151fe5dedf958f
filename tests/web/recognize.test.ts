// The recognize plugin on its own: a fake job submitter (no model, no datasets), the real error mapping.
import { beforeAll, describe, expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { RecognizeAnswerSchema, recognizeApi } from "../../roles/web/recognize.ts";
import { AUTH, captureLogs, faceReport, facesResult, fakeJobs, guarded, multipart, request, testImages, testUploadReader } from "./support.ts";

let images: Awaited<ReturnType<typeof testImages>>;
beforeAll(async () => {
  images = await testImages();
});

const PAUL = { subject: "Paul", similarity: 0.95 };
const JOHN = { subject: "John", similarity: 0.6 };

function recognizer(result = facesResult([faceReport([PAUL, JOHN]), faceReport([JOHN], { x: 200, y: 50, width: 40, height: 48 })])) {
  const { jobs, submitted } = fakeJobs(undefined, () => result);
  const app = guarded(recognizeApi({ jobs, uploads: testUploadReader({ maxFileBytes: 64 * 1024 }) }), { log: captureLogs().logger });
  const recognize = (query = "", form = multipart("image", images.jpeg, "a.jpg"), headers: Record<string, string> = AUTH) =>
    app.handle(request(`/v1/recognize${query}`, { method: "POST", body: form, headers }));
  return { recognize, submitted };
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

  test("no face: 200 with faces []", async () => {
    const { recognize } = recognizer(facesResult([]));
    const response = await recognize();
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ faces: [] });
  });

  describe("bad input: a 4xx with its code, and no job", () => {
    const cases: [string, string, () => FormData, number, string][] = [
      ["k over 20", "?k=21", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["k not a number", "?k=three", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["unknown mode", "?mode=fuzzy", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["maxFaces 0", "?maxFaces=0", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["minScore above 1", "?minScore=2", () => multipart("image", images.jpeg, "a.jpg"), 400, "invalid_parameter"],
      ["no image field", "", () => multipart("inputFile", images.jpeg, "a.jpg"), 400, "missing_field"],
      ["not an image", "", () => multipart("image", images.notAnImage, "a.jpg"), 400, "not_an_image"],
      ["GIF", "", () => multipart("image", images.gif, "a.gif", "image/gif"), 415, "unsupported_format"],
    ];
    for (const [what, query, form, status, code] of cases) {
      test(what, async () => {
        const { recognize, submitted } = recognizer();
        const response = await recognize(query, form());
        expect(response.status).toBe(status);
        expect(await response.json()).toMatchObject({ error: code });
        expect(submitted).toEqual([]);
      });
    }

    test("no token: 401", async () => {
      const { recognize, submitted } = recognizer();
      const response = await recognize("", multipart("image", images.jpeg, "a.jpg"), {});
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: "unauthorized" });
      expect(submitted).toEqual([]);
    });
  });
});
