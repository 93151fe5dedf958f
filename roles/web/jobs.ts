/** Submits one job for a stored upload and waits for its reply: ids and keys on the request queue, never bytes. */
import type { Bucket, JobQueue } from "../cloud/types.ts";
import { apiResultKey, embeddingKey, type AnswerMode } from "../deployment.ts";
import { createHash } from "node:crypto";
import type { TSchema, Static } from "@sinclair/typebox";
import { decodeMessage, FacesResultSchema, SearchResultSchema, type Candidate, type FacesOptions, type FacesResult, type JobKind, type JobMessage, type SuccessfulReplyTo } from "../messages.ts";
import { ReplyTimeoutError } from "./correlation.ts";
import type { ReplyPoller } from "./reply-poller.ts";
import { IMAGE_PROBLEM_STATUS, type Upload } from "./upload.ts";

/** What a job asks for beyond its input: a faces job's options, an enrollment's choice of face, a search's k. */
export type JobOptions = Pick<JobMessage, "faces" | "enrollFace" | "search">;
/** A job's input object in the input bucket: an upload, or a search's embedding. */
export type JobInput = Pick<Upload, "key" | "name" | "sha256">;

export interface JobSubmitter {
  submit<K extends JobKind>(jobId: string, kind: K, input: JobInput, options?: JobOptions): Promise<SuccessfulReplyTo<K>>;
  /** A faces job, its result read from the output bucket when it did not fit in the reply. */
  faces(jobId: string, upload: Upload, options: FacesOptions): Promise<FacesResult>;
  /**
   * A search job: the app role searches the gallery it holds for `embedding` (normalised), stored meanwhile in the
   * input bucket under the request's id (a job message is too small for it) and deleted once answered.
   */
  search(jobId: string, embedding: Float32Array, k: number): Promise<Candidate[]>;
}

/** The key of a search's embedding in the input bucket: under the request's id, as its uploads are. */
export const searchInputKey = (jobId: string): string => `${jobId}/embedding.f32`;

/** An app instance answered that it could not do the job: its code and message, as it sent them. */
export class JobRefusedError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "JobRefusedError";
  }
}

/**
 * The object a reply names for the web role to read (and delete): its own job's, at the one key the job's kind puts it,
 * so an app instance (which decodes untrusted images) cannot point the web role at any other object.
 */
function namedObject(jobId: string, reply: SuccessfulReplyTo<JobKind>): { named: string; expected: string } | undefined {
  if ("embeddingKey" in reply) return { named: reply.embeddingKey, expected: embeddingKey(jobId) };
  if ("resultKey" in reply) return { named: reply.resultKey, expected: apiResultKey(jobId) };
  return undefined;
}

/** No reply came in time; the job itself still completes. */
export class JobTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no reply within ${timeoutMs} ms`);
    this.name = "JobTimeoutError";
  }
}

export function createJobSubmitter(deps: {
  inBucket: Bucket;
  /** Where an app instance leaves a faces result too large for its reply. */
  outBucket: Bucket;
  requestQueue: JobQueue;
  replyQueueName: string;
  poller: ReplyPoller;
  timeoutMs: number;
  mode: AnswerMode;
  /** The gallery version each job must see: every change this web process made or read. */
  galleryVersion: () => number;
  onJobQueued?: () => void;
}): JobSubmitter {
  const submitter: JobSubmitter = {
    async submit(jobId, kind, input, options = {}) {
      const inputKey = input.key;
      const job: JobMessage = {
        kind,
        jobId,
        replyTo: deps.replyQueueName,
        inputKey,
        name: input.name,
        sha256: input.sha256,
        mode: deps.mode,
        galleryVersion: deps.galleryVersion(),
        ...options,
      };
      const reply = deps.poller.waitFor(jobId, kind, deps.timeoutMs);
      reply.catch(() => {}); // settled below; this only keeps an early rejection from going unhandled
      try {
        await deps.requestQueue.send(JSON.stringify(job));
      } catch (error) {
        deps.poller.cancel(jobId, error as Error);
        await deps.inBucket.delete(inputKey).catch(() => {});
        throw error;
      }
      deps.onJobQueued?.();
      let answer;
      try {
        answer = await reply;
      } catch (error) {
        if (error instanceof ReplyTimeoutError) throw new JobTimeoutError(deps.timeoutMs);
        throw error;
      }
      if (!answer.ok) {
        // A refused enrollment keeps nothing; other jobs' images stay, as the record of what was asked. The web role
        // reads only headers, so an image damaged past its header is the app's to find, and is not kept either.
        if (kind === "embed" || Object.hasOwn(IMAGE_PROBLEM_STATUS, answer.error.code)) await deps.inBucket.delete(inputKey).catch(() => {});
        throw new JobRefusedError(answer.error.code, answer.error.message);
      }
      const object = namedObject(jobId, answer);
      if (object && object.named !== object.expected) throw new Error(`the reply to job ${jobId} names the object ${object.named}, not its own ${object.expected}`);
      return answer as SuccessfulReplyTo<typeof kind>;
    },

    async faces(jobId, upload, options) {
      return resultOf(FacesResultSchema, await submitter.submit(jobId, "faces", upload, { faces: options }));
    },

    async search(jobId, embedding, k) {
      const bytes = new Uint8Array(embedding.buffer, embedding.byteOffset, embedding.byteLength);
      const input = { key: searchInputKey(jobId), name: "embedding", sha256: createHash("sha256").update(bytes).digest("hex") };
      await deps.inBucket.put(input.key, bytes, { contentType: "application/octet-stream" });
      try {
        return (await resultOf(SearchResultSchema, await submitter.submit(jobId, "search", input, { search: { k } }))).candidates;
      } finally {
        // A caller's embedding is not kept, unlike a photo: it is the face itself.
        await deps.inBucket.delete(input.key).catch(() => {});
      }
    },
  };

  /** A result inline in its reply, or read (and deleted) from the output bucket when it did not fit. */
  async function resultOf<T extends TSchema>(schema: T, reply: { result: Static<T> } | { resultKey: string }): Promise<Static<T>> {
    if ("result" in reply) return reply.result;
    const stored = await deps.outBucket.get(reply.resultKey);
    if (!stored) throw new Error(`the result ${reply.resultKey} is missing from the output bucket`);
    await deps.outBucket.delete(reply.resultKey).catch(() => {});
    return decodeMessage(schema, new TextDecoder().decode(stored));
  }
  return submitter;
}
