/** The pieces every JSON API answer shares, as TypeBox schemas (they feed the OpenAPI document), and their making. */
import { t } from "elysia";
import { BoxSchema, CandidateSchema, PointSchema, QualitySchema, type FaceReport } from "../messages.ts";

export { BoxSchema, CandidateSchema, QualitySchema };

/** Every error answer: a stable code, a sentence for the client, the request id. */
export const ErrorAnswerSchema = t.Object({ error: t.String(), message: t.String(), requestId: t.String() });
/** The refusals of a route that takes an upload: bad input, no token, the body's deadline, its size, its format, no upload slot. */
export const UPLOAD_ERRORS = { 400: ErrorAnswerSchema, 401: ErrorAnswerSchema, 408: ErrorAnswerSchema, 413: ErrorAnswerSchema, 415: ErrorAnswerSchema, 503: ErrorAnswerSchema };

export const BoxRatioSchema = t.Object(
  { left: t.Number(), top: t.Number(), width: t.Number(), height: t.Number() },
  { description: "the box as fractions of the image's width and height" },
);

export const LandmarksSchema = t.Array(PointSchema, {
  minItems: 5,
  maxItems: 5,
  description: "left eye, right eye, nose tip, left and right mouth corners, in pixels (left = smaller x)",
});

/** Where a face is: what detect, recognize and verify all say about it. */
export const PlacedFaceSchema = t.Object({ box: BoxSchema, boxRatio: BoxRatioSchema, score: t.Number(), landmarks: LandmarksSchema });

export function placedFace(face: FaceReport, width: number, height: number) {
  const ratio = (value: number, of: number) => Math.round((value / of) * 10_000) / 10_000;
  return {
    box: face.box,
    boxRatio: { left: ratio(face.box.x, width), top: ratio(face.box.y, height), width: ratio(face.box.width, width), height: ratio(face.box.height, height) },
    score: face.score,
    landmarks: face.landmarks,
  };
}

/** Query numbers arrive as text: these coerce them. */
export const QueryInteger = (options: { minimum: number; maximum: number; description: string }) => t.Optional(t.Integer(options));
export const QueryNumber = (options: { minimum: number; maximum: number; description: string }) => t.Optional(t.Number(options));
