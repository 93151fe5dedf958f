/** `POST /v1/recognize`: every face in a photo, largest first, with its box, its best match and the top candidates. */
import { Elysia, t } from "elysia";
import type { FarCalibration } from "../../model/index.ts";
import { MAX_CANDIDATES, MAX_FACES } from "../messages.ts";
import { API_PATH } from "./access.ts";
import {
  CandidateSchema,
  errorAnswers,
  EXAMPLE_IMAGE,
  EXAMPLE_PLACED_FACE,
  EXAMPLE_REQUEST_ID,
  EXAMPLE_CANDIDATES,
  EXAMPLE_MATCH,
  EXAMPLE_OPERATING_POINT,
  PlacedFaceSchema,
  placedFace,
  UPLOAD_REFUSALS,
  withExample,
} from "./api-schemas.ts";
import type { JobSubmitter } from "./jobs.ts";
import { answeredPoint, FarAnswerSchema, farQuery, requestedPoint } from "./operating-point.ts";
import { queryDecimal, queryInteger } from "./query-numbers.ts";
import { requestId } from "./request-id.ts";
import { streamedBody, type UploadReader } from "./upload.ts";

export interface FaceRouteOptions {
  jobs: JobSubmitter;
  uploads: UploadReader;
}

export const DEFAULT_CANDIDATES = 3;
export const DEFAULT_MAX_FACES = 20;

/** What recognize and detect both take: how many faces, and how sure the detector must be of each. */
export const faceQuery = {
  ...queryInteger("maxFaces", { minimum: 1, maximum: MAX_FACES, description: `most faces answered, largest first (default ${DEFAULT_MAX_FACES})` }),
  ...queryDecimal("minScore", { minimum: 0, maximum: 1, description: "faces the detector scored lower are left out" }),
};

export const recognizeQuery = (operatingPoints: FarCalibration) => t.Object({
  ...queryInteger("k", { minimum: 1, maximum: MAX_CANDIDATES, description: `candidates per face (default ${DEFAULT_CANDIDATES})` }),
  mode: t.Optional(
    t.Union([t.Literal("open"), t.Literal("closed")], {
      description: "open (default): match is null below the threshold; closed: the nearest subject is always the match",
    }),
  ),
  ...faceQuery,
  ...farQuery(operatingPoints),
});

export const RecognizeAnswerSchema = withExample(
  t.Object({
    requestId: t.String(),
    width: t.Integer({ description: "of the upright (EXIF-rotated) image" }),
    height: t.Integer(),
    threshold: t.Number({ description: "similarity at or above which a candidate is the match in open mode" }),
    far: FarAnswerSchema,
    faces: t.Array(
      t.Composite([
        PlacedFaceSchema,
        t.Object({
          match: t.Union([CandidateSchema, t.Null()], { description: "the best candidate, or null (open mode, under the threshold)" }),
          candidates: t.Array(CandidateSchema, { description: "best subjects first, one entry per subject (scored by its template: the mean of its faces)" }),
        }),
      ]),
      { description: "every face, largest first" },
    ),
    timings: t.Object(
      { decode: t.Number(), detect: t.Number(), align: t.Number(), embed: t.Number(), match: t.Number(), queue: t.Number(), total: t.Number() },
      { description: "milliseconds; queue is the time outside the app instance's work (queues, storage); stages are 0 for a photo analysed before" },
    ),
  }),
  {
    requestId: EXAMPLE_REQUEST_ID,
    ...EXAMPLE_IMAGE,
    ...EXAMPLE_OPERATING_POINT,
    faces: [{ ...EXAMPLE_PLACED_FACE, match: EXAMPLE_MATCH, candidates: EXAMPLE_CANDIDATES }],
    timings: { decode: 3.148, detect: 4.641, align: 8.232, embed: 32.125, match: 0.412, queue: 6.87, total: 55.428 },
  },
);

export function recognizeApi(options: FaceRouteOptions & { operatingPoints: FarCalibration }) {
  const { jobs, uploads, operatingPoints } = options;
  return new Elysia({ name: "recognize-api" })
    .use(requestId)
    .post(
      `${API_PATH}/recognize`,
      async ({ request, query, requestId }) => {
        const started = performance.now();
        const requested = requestedPoint(operatingPoints, query.far);
        const upload = await uploads.readOne(request, requestId, "image");
        const result = await jobs.faces(requestId, upload, {
          k: query.k ?? DEFAULT_CANDIDATES,
          maxFaces: query.maxFaces ?? DEFAULT_MAX_FACES,
          minScore: query.minScore ?? 0,
          embedding: false,
        });
        const open = (query.mode ?? "open") === "open";
        const { threshold, far } = answeredPoint(requested, result);
        const total = performance.now() - started;
        const { total: appTotal, ...stages } = result.timings;
        return {
          requestId,
          width: result.width,
          height: result.height,
          threshold,
          far,
          faces: result.faces.map((face) => {
            const best = face.candidates[0];
            return {
              ...placedFace(face, result.width, result.height),
              match: best && (!open || best.similarity >= threshold) ? best : null,
              candidates: face.candidates,
            };
          }),
          timings: { ...stages, queue: round(Math.max(0, total - appTotal)), total: round(total) },
        };
      },
      {
        ...streamedBody(t.Object({ image: t.File({ description: "a JPEG, PNG or WebP photo" }) }), { summary: "Recognize every face in a photo", tags: ["recognition"] }),
        query: recognizeQuery(operatingPoints),
        response: { 200: RecognizeAnswerSchema, ...errorAnswers([...UPLOAD_REFUSALS]) },
      },
    );
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;
