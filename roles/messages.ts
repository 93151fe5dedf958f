/** What travels on the queues: ids and keys, never image bytes. One TypeBox schema per message. */
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

import { AnswerModeSchema, MAX_NAME_BYTES } from "./deployment.ts";

/**
 * recognize: the classic answer; embed: one face's embedding for enrollment; faces: every face, for the JSON API;
 * search: the nearest subjects to an embedding the caller gave (its input object: little-endian float32, normalised).
 */
export const JobKindSchema = Type.Union([Type.Literal("recognize"), Type.Literal("embed"), Type.Literal("faces"), Type.Literal("search")]);
export type JobKind = Static<typeof JobKindSchema>;

/** Most candidates per face and most faces per image a faces job may ask for. */
export const MAX_CANDIDATES = 20;
export const MAX_FACES = 100;

/** What a faces job asks for. */
export const FacesOptionsSchema = Type.Object({
  /** Candidates per face; 0 skips matching. */
  k: Type.Integer({ minimum: 0, maximum: MAX_CANDIDATES }),
  maxFaces: Type.Integer({ minimum: 1, maximum: MAX_FACES }),
  /** Faces the detector scored lower are left out. */
  minScore: Type.Number({ minimum: 0, maximum: 1 }),
  /** Send back the largest face's embedding (for a 1:1 check in the web role). */
  embedding: Type.Boolean(),
  /** Score the largest face against this enrolled subject, as recognition scores subjects (a subject's verification). */
  subject: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
});
export type FacesOptions = Static<typeof FacesOptionsSchema>;

/** single: a photo with more than one face is refused; largest: the largest face is enrolled. */
export const EnrollFaceSchema = Type.Union([Type.Literal("single"), Type.Literal("largest")]);
export type EnrollFace = Static<typeof EnrollFaceSchema>;

export const JobMessageSchema = Type.Object({
  kind: JobKindSchema,
  jobId: Type.String({ minLength: 1, maxLength: 64 }),
  replyTo: Type.String({ minLength: 1, maxLength: 256 }),
  /** Key of the image in the input bucket. */
  inputKey: Type.String({ minLength: 1, maxLength: 400 }),
  /** The upload's file name without extension: the output bucket key. */
  name: Type.String({ minLength: 1, maxLength: MAX_NAME_BYTES }),
  /** SHA-256 of the image bytes, for the result cache. */
  sha256: Type.String({ pattern: "^[0-9a-f]{64}$" }),
  mode: AnswerModeSchema,
  /** Kind faces only. */
  faces: Type.Optional(FacesOptionsSchema),
  /** Kind search only: candidates wanted. */
  search: Type.Optional(Type.Object({ k: Type.Integer({ minimum: 1, maximum: MAX_CANDIDATES }) })),
  /** Kind embed only: which face of the photo is enrolled (single when absent). */
  enrollFace: Type.Optional(EnrollFaceSchema),
  /**
   * The gallery's version (its log's sequence number) the web role had when it sent the job: the app instance applies
   * the changes up to it first, so a job sent after an enrollment was answered sees that enrollment. Absent: any.
   */
  galleryVersion: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  /** Times the controller sent the job again after the dead-letter queue took it (its holders died); absent: none. */
  redrives: Type.Optional(Type.Integer({ minimum: 0 })),
  /**
   * Set (ms since the epoch) on the copy the controller keeps in the dead-letter queue once it gave up on the job and
   * answered job_failed: the operator's record, never redriven or answered again.
   */
  failedAt: Type.Optional(Type.Number()),
});
export type JobMessage = Static<typeof JobMessageSchema>;

export const FaceResultSchema = Type.Object({
  box: Type.Tuple([Type.Number(), Type.Number(), Type.Number(), Type.Number()]),
  score: Type.Number(),
  wholeImage: Type.Boolean(),
  person: Type.Optional(Type.String()),
  similarity: Type.Optional(Type.Number()),
  known: Type.Boolean(),
});
export type FaceResult = Static<typeof FaceResultSchema>;

/** The answer of a job of any kind that could not be done: a stable code and a sentence. */
export const FailedReplySchema = Type.Object({
  ok: Type.Literal(false),
  jobId: Type.String(),
  error: Type.Object({ code: Type.String(), message: Type.String() }),
});
export type FailedReply = Static<typeof FailedReplySchema>;

export const RecognizedReplySchema = Type.Object({
  ok: Type.Literal(true),
  jobId: Type.String(),
  /** The classic answer: the person (or "Unknown") for the most prominent face. */
  person: Type.String(),
  faces: Type.Integer({ minimum: 0 }),
});

export const EmbeddedReplySchema = Type.Object({
  ok: Type.Literal(true),
  jobId: Type.String(),
  faces: Type.Integer({ minimum: 0 }),
  /** Key of the most prominent face's embedding, written to the gallery bucket. */
  embeddingKey: Type.String({ minLength: 1 }),
});

const Num = Type.Number();

export const BoxSchema = Type.Object({ x: Num, y: Num, width: Num, height: Num }, { description: "pixels of the upright (EXIF-rotated) image" });
export const PointSchema = Type.Tuple([Num, Num]);
export const CandidateSchema = Type.Object({ subject: Type.String(), similarity: Num });
export type Candidate = Static<typeof CandidateSchema>;
export const QualitySchema = Type.Object({
  sharpness: Type.Number({ minimum: 0, maximum: 1 }),
  brightness: Type.Number({ minimum: 0, maximum: 1 }),
  size: Type.Number({ minimum: 0, description: "shorter side of the box, in pixels" }),
});

/** One face as an app instance reports it. */
export const FaceReportSchema = Type.Object({
  box: BoxSchema,
  score: Num,
  /** Left eye, right eye, nose tip, left and right mouth corners. */
  landmarks: Type.Array(PointSchema, { minItems: 5, maxItems: 5 }),
  quality: QualitySchema,
  /** Best subjects first, one entry per subject; empty when nothing was matched. */
  candidates: Type.Array(CandidateSchema),
});
export type FaceReport = Static<typeof FaceReportSchema>;

/** The app instance's share of the work, in milliseconds. */
export const AppTimingsSchema = Type.Object({ decode: Num, detect: Num, align: Num, embed: Num, match: Num, total: Num });

export const FacesResultSchema = Type.Object({
  width: Type.Integer(),
  height: Type.Integer(),
  /** The open-set threshold in force. */
  threshold: Num,
  /** The pairwise false accept rate it was calibrated for; absent: a threshold set by hand (model.threshold, a custom embedder's). */
  far: Type.Optional(Num),
  /** Largest first. */
  faces: Type.Array(FaceReportSchema),
  /** The largest face's embedding, little-endian float32, base64, when asked for. */
  embedding: Type.Optional(Type.String()),
  /** The largest face's similarity to the subject asked for; absent when that subject has no face (or no face was found). */
  subjectSimilarity: Type.Optional(Num),
  timings: AppTimingsSchema,
});
export type FacesResult = Static<typeof FacesResultSchema>;

export const SearchResultSchema = Type.Object({ candidates: Type.Array(CandidateSchema, { description: "best subjects first, similarities to 4 places" }) });
export type SearchResult = Static<typeof SearchResultSchema>;

/**
 * A faces or search job's answer: inline when the reply fits in MAX_JOB_MESSAGE_BYTES (the smallest queue limit
 * anywhere: the embedded queues apply it to replies too) and holds no embedding, else in the output bucket under
 * `resultKey`.
 */
const inlineOrStored = <T extends TSchema>(result: T) =>
  Type.Union([
    Type.Object({ ok: Type.Literal(true), jobId: Type.String(), result }),
    Type.Object({ ok: Type.Literal(true), jobId: Type.String(), resultKey: Type.String({ minLength: 1 }) }),
  ]);
export const FacesReplySchema = inlineOrStored(FacesResultSchema);
export const SearchReplySchema = inlineOrStored(SearchResultSchema);

/** The reply schema of each job kind: the web role decodes a reply with the schema of the kind it submitted. */
export const ReplySchemas = {
  recognize: Type.Union([RecognizedReplySchema, FailedReplySchema]),
  embed: Type.Union([EmbeddedReplySchema, FailedReplySchema]),
  faces: Type.Union([FacesReplySchema, FailedReplySchema]),
  search: Type.Union([SearchReplySchema, FailedReplySchema]),
} satisfies Record<JobKind, TSchema>;
export type ReplyTo<K extends JobKind> = Static<(typeof ReplySchemas)[K]>;
export type SuccessfulReplyTo<K extends JobKind> = Exclude<ReplyTo<K>, FailedReply>;
/** A reply of any kind, as an app instance sends it. */
export type ReplyMessage = ReplyTo<JobKind>;

/** What every reply carries whatever its kind: enough to find the request waiting for it. */
export const ReplyEnvelopeSchema = Type.Object({ jobId: Type.String({ minLength: 1 }) });

/** How a job's try ended at the app role: answered (ok or refused with a reason), or failed (retried, or set aside). */
export const JobOutcomeSchema = Type.Union([Type.Literal("answered"), Type.Literal("refused"), Type.Literal("failed")]);
export type JobOutcome = Static<typeof JobOutcomeSchema>;
/**
 * Why an app instance put a message in the dead-letter queue: it is not a job. A job that spends its receives is
 * dead-lettered by the queue itself, and the controller redrives it (roles/controller/dead-letters.ts, its own series).
 */
export const DeadLetterReasonSchema = Type.Literal("malformed");
export type DeadLetterReason = Static<typeof DeadLetterReasonSchema>;

const Count = Type.Integer({ minimum: 0 });
/** An app instance's job counters since its process started (the `facefleet_jobs_*` series); only counts above 0 are listed. */
export const JobCountsSchema = Type.Object({
  tries: Type.Array(Type.Object({ kind: JobKindSchema, outcome: JobOutcomeSchema, count: Count })),
  redelivered: Count,
  deadLettered: Type.Array(Type.Object({ reason: DeadLetterReasonSchema, count: Count })),
  /** Times the instance called itself unhealthy. */
  unhealthyMarks: Type.Optional(Count),
});
export type JobCounts = Static<typeof JobCountsSchema>;

/** An app instance's report of the jobs it holds (received, not yet deleted), written at `at` (ms since the epoch). */
export const JobReportSchema = Type.Object({
  instanceId: Type.String({ minLength: 1, maxLength: 64 }),
  jobs: Type.Integer({ minimum: 0 }),
  at: Type.Number(),
  /** false: the instance cannot run jobs (its last ones all failed on a fault of its own) and has stopped taking them. */
  healthy: Type.Optional(Type.Boolean()),
  /** Jobs answered since the instance started: the controller sees progress in it. */
  completed: Type.Optional(Type.Integer({ minimum: 0 })),
  /** For the web role's /metrics on EC2, where the app processes serve no HTTP. */
  counts: Type.Optional(JobCountsSchema),
});
export type JobReport = Static<typeof JobReportSchema>;

export class MessageFormatError extends Error {
  override name = "MessageFormatError";
}

export function decodeMessage<T extends TSchema>(schema: T, body: string): Static<T> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new MessageFormatError("message body is not JSON");
  }
  if (!Value.Check(schema, parsed)) {
    const first = Value.Errors(schema, parsed).First();
    throw new MessageFormatError(`message does not match its schema: ${first ? `${first.path} ${first.message}` : "unknown"}`);
  }
  return parsed;
}
