/** What travels on the queues: ids and keys, never image bytes. One TypeBox schema per message. */
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

import { AnswerModeSchema, MAX_NAME_BYTES } from "./deployment.ts";

export const JobMessageSchema = Type.Object({
  kind: Type.Union([Type.Literal("recognize"), Type.Literal("embed")]),
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

export const ReplyMessageSchema = Type.Union([
  Type.Object({
    ok: Type.Literal(true),
    jobId: Type.String(),
    /** The classic answer: the person (or "Unknown") for the most prominent face. */
    person: Type.String(),
    faces: Type.Integer({ minimum: 0 }),
    /** For "embed" jobs: key of the embedding written to the gallery bucket. */
    embeddingKey: Type.Optional(Type.String()),
  }),
  Type.Object({
    ok: Type.Literal(false),
    jobId: Type.String(),
    error: Type.Object({ code: Type.String(), message: Type.String() }),
  }),
]);
export type ReplyMessage = Static<typeof ReplyMessageSchema>;

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
