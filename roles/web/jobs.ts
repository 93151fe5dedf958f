/** Submits one job for an upload and waits for its reply: image to the input bucket, ids on the request queue. */
import type { Bucket, JobQueue } from "../cloud/types.ts";
import type { JobMessage, ReplyMessage } from "../messages.ts";
import { ReplyTimeoutError } from "./correlation.ts";
import { HttpError } from "./http-error.ts";
import type { ReplyPoller } from "./reply-poller.ts";
import type { Upload } from "./upload.ts";

export interface JobSubmitter {
  submit(jobId: string, kind: JobMessage["kind"], upload: Upload): Promise<Extract<ReplyMessage, { ok: true }>>;
}

const REPLY_ERROR_STATUS: Record<string, number> = {
  no_subjects_enrolled: 409,
  no_face: 422,
  job_failed: 500,
};

export function createJobSubmitter(deps: {
  inBucket: Bucket;
  requestQueue: JobQueue;
  replyQueueName: string;
  poller: ReplyPoller;
  timeoutMs: number;
  mode: JobMessage["mode"];
}): JobSubmitter {
  return {
    async submit(jobId, kind, upload) {
      const inputKey = `${jobId}/${upload.safeFileName}`;
      await deps.inBucket.put(inputKey, upload.bytes, { contentType: upload.contentType });
      const job: JobMessage = {
        kind,
        jobId,
        replyTo: deps.replyQueueName,
        inputKey,
        name: upload.name,
        sha256: upload.sha256,
        mode: deps.mode,
      };
      const reply = deps.poller.waitFor(jobId, deps.timeoutMs);
      reply.catch(() => {}); // settled below; this only keeps an early rejection from going unhandled
      try {
        await deps.requestQueue.send(JSON.stringify(job));
      } catch (error) {
        deps.poller.cancel(jobId, error as Error);
        await deps.inBucket.delete(inputKey).catch(() => {});
        throw error;
      }
      let answer: ReplyMessage;
      try {
        answer = await reply;
      } catch (error) {
        if (error instanceof ReplyTimeoutError) {
          throw new HttpError(504, "timeout", `no answer within ${deps.timeoutMs} ms; the job still completes and its result lands in the output bucket`);
        }
        throw error;
      }
      if (!answer.ok) throw new HttpError(REPLY_ERROR_STATUS[answer.error.code] ?? 422, answer.error.code, answer.error.message);
      return answer;
    },
  };
}
