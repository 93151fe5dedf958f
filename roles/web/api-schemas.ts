/** The pieces every JSON API answer shares, as TypeBox schemas (they feed the OpenAPI document), and their making. */
import type { Static, TSchema } from "@sinclair/typebox";
import { t } from "elysia";
import { BoxSchema, CandidateSchema, PointSchema, QualitySchema, type Candidate, type FaceReport } from "../messages.ts";

export { BoxSchema, CandidateSchema, QualitySchema };

/** The schema with its example for the docs, typed by the schema (tests/web/docs.test.ts checks each one against it). */
export function withExample<T extends TSchema>(schema: T, example: Static<T>): T {
  return { ...schema, examples: [example] };
}

/**
 * What a name shown in logs, listings and the page may not hold: C0 and C1 controls, the bidi controls (which reorder
 * what follows), line and paragraph separators, the BOM and interlinear annotations. Zero-width joiners stay: some
 * scripts need them. Written as UTF-16 code units: TypeBox compiles patterns without the `u` flag.
 */
const UNDISPLAYABLE = "\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069\\ufeff\\ufff9-\\ufffb";
/** A surrogate without its pair: no character, and nothing UTF-8 can encode. */
const LONE_SURROGATE = "[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]";

/** A pattern for a name of letters of any script and punctuation: none of the above, nor `excluded` (a character class body); `guard` is a lookahead of the caller's. */
export function displayableName(excluded = "", guard = ""): string {
  return `^${guard}(?![^]*(?:${LONE_SURROGATE}))[^${UNDISPLAYABLE}${excluded}]+$`;
}

export const EXAMPLE_REQUEST_ID = "3f0c9a52-8d1e-4b7a-9c61-2e5d7f4a8b10";

/** Every error answer: a stable code, a sentence for the client, the request id. */
const ErrorAnswerSchema = t.Object({ error: t.String(), message: t.String(), requestId: t.String() });

/** One answer the API gives under each 4xx status, for the docs. */
const ERROR_EXAMPLES = {
  400: { error: "missing_field", message: "multipart field 'image' with a file is required" },
  401: { error: "unauthorized", message: "a valid bearer token is required" },
  403: { error: "insufficient_scope", message: "a recognition key may only recognize, detect, verify and search; this route needs the admin token" },
  404: { error: "unknown_subject", message: "no subject named 'Jane_Doe'" },
  409: { error: "subject_exists", message: "a subject named 'Aaron_Sorkin' exists; add ?merge=true to merge into it" },
  413: { error: "file_too_large", message: "a file in 'image' has more than 10485760 bytes, the limit" },
  408: { error: "body_timeout", message: "the upload was not received within 30000 ms" },
  415: { error: "unsupported_format", message: "gif images are not supported; send JPEG, PNG or WebP" },
  422: { error: "no_face", message: "no face found in image" },
  429: { error: "too_many_uploads", message: "this address has its share of the uploads being read (4 at once) and of the places to wait; send the next once one is answered" },
  503: { error: "busy", message: "too many uploads are waiting; try again shortly" },
} as const;
type ErrorStatus = keyof typeof ERROR_EXAMPLES;

/**
 * The error answers a route documents: the shared schema under each status, with that status's example, or the
 * route's own where the usual one is not what it answers.
 */
export function errorAnswers<S extends ErrorStatus>(
  statuses: S[],
  examples: Partial<Record<S, { error: string; message: string }>> = {},
): Record<S, typeof ErrorAnswerSchema> {
  const answers = {} as Record<S, typeof ErrorAnswerSchema>;
  for (const status of statuses) {
    answers[status] = withExample(ErrorAnswerSchema, { ...(examples[status] ?? ERROR_EXAMPLES[status]), requestId: EXAMPLE_REQUEST_ID });
  }
  return answers;
}

/**
 * The refusals of a route that takes an upload: bad input, no token, the body's deadline or pace, its size, its format,
 * this address's share of the upload slots, no upload slot.
 */
export const UPLOAD_REFUSALS = [400, 401, 408, 413, 415, 429, 503] as const;

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

/**
 * What every face example in the docs is made from: the face of a 250x250 LFW photo (Aaron_Sorkin_0001.jpg) as the
 * default pipeline reports it, matched against a gallery holding Aaron_Sorkin_0002.jpg (similarity 0.9557).
 */
export const EXAMPLE_IMAGE = { width: 250, height: 250 };
/** The default embedder's default operating point: its threshold at a false accept rate of 1e-3 (model/README.md, "The open-set threshold"). */
export const EXAMPLE_OPERATING_POINT = { threshold: 0.9307, far: 0.001 };
/** The photo's own subject, over the threshold. */
export const EXAMPLE_MATCH: Candidate = { subject: "Aaron_Sorkin", similarity: 0.9557 };
export const EXAMPLE_CANDIDATES: Candidate[] = [
  EXAMPLE_MATCH,
  { subject: "John_Travolta", similarity: 0.8841 },
  { subject: "Kevin_Spacey", similarity: 0.8712 },
];
export const EXAMPLE_FACE: FaceReport = {
  box: { x: 48.2, y: 79.4, width: 125.8, height: 125.7 },
  score: 0.935,
  landmarks: [
    [101.2, 107.2],
    [148, 106.7],
    [131.4, 136],
    [101.4, 158.8],
    [148.6, 157.2],
  ],
  quality: { sharpness: 0.306, brightness: 0.487, size: 125.7 },
  candidates: EXAMPLE_CANDIDATES,
};
export const EXAMPLE_PLACED_FACE = placedFace(EXAMPLE_FACE, EXAMPLE_IMAGE.width, EXAMPLE_IMAGE.height);
