/** What travels on the queues: ids and keys, never image bytes. One TypeBox schema per message. */
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

import { AnswerModeSchema, MAX_NAME_BYTES } from "./deployment.ts";

export const JobKindSchema = Type.Union([Type.Literal("recognize"), Type.Literal("embed")]);
export type JobKind = Static<typeof JobKindSchema>;

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

/** The reply schema of each job kind: the web role decodes a reply with the schema of the kind it submitted. */
export const ReplySchemas = {
  recognize: Type.Union([RecognizedReplySchema, FailedReplySchema]),
  embed: Type.Union([EmbeddedReplySchema, FailedReplySchema]),
} satisfies Record<JobKind, TSchema>;
export type ReplyTo<K extends JobKind> = Static<(typeof ReplySchemas)[K]>;
export type SuccessfulReplyTo<K extends JobKind> = Exclude<ReplyTo<K>, FailedReply>;
/** A reply of any kind, as an app instance sends it. */
export type ReplyMessage = ReplyTo<JobKind>;

/** What every reply carries whatever its kind: enough to find the request waiting for it. */
export const ReplyEnvelopeSchema = Type.Object({ jobId: Type.String({ minLength: 1 }) });

/** An app instance's report of the jobs it holds (received, not yet deleted), written at `at` (ms since the epoch). */
export const JobReportSchema = Type.Object({
  instanceId: Type.String({ minLength: 1, maxLength: 64 }),
  jobs: Type.Integer({ minimum: 0 }),
  at: Type.Number(),
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
