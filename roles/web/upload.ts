/**
 * The one way uploads are read: an untrusted multipart body, each file streamed into the input bucket as it arrives
 * (checked from its header first, hashed on the way), or a clear 4xx with nothing stored. A bounded number of bodies
 * is read at once, each within a deadline, so memory does not grow with the number or the size of uploads.
 */
import Busboy, { type BusboyFileStream, type BusboyInstance } from "@fastify/busboy";
import type { Bucket } from "../cloud/types.ts";
import { MAX_NAME_BYTES } from "../deployment.ts";
import { HttpError } from "./http-error.ts";
import { UploadSlots } from "./upload-slots.ts";

/** An image stored in the input bucket; its bytes are not held. */
export interface Upload {
  /** Its key in the input bucket: `<request id>/<safe file name>`. */
  key: string;
  /** The file name without directories or extension: the classic answer's prefix and the output key. */
  name: string;
  contentType: string;
  sha256: string;
  bytes: number;
}

/** What a multipart body held: the files of the asked-for field, stored, and its text fields. */
export interface UploadForm {
  uploads: Upload[];
  fields: Record<string, string>;
}

export type ImageProblemCode = "empty" | "not_an_image" | "truncated" | "unsupported_format" | "too_many_pixels";

/** Why bytes are not an image this service takes: a code and a sentence for the sender. */
export interface ImageProblem {
  code: ImageProblemCode;
  message: string;
}

/**
 * Looks at an image's header (never decoding its pixels): its problem, or undefined when it is fine. Injected, so the
 * web role knows nothing of the model; a rejection that is not a problem with the image is a fault (thrown).
 */
export type ImageInspector = (bytes: Uint8Array) => Promise<ImageProblem | undefined>;

/** The HTTP status of each image problem, whether the web role or an app instance found it. */
export const IMAGE_PROBLEM_STATUS: Record<ImageProblemCode, number> = {
  empty: 400,
  not_an_image: 400,
  truncated: 400,
  unsupported_format: 415,
  too_many_pixels: 413,
};

/**
 * The longest prefix of `text` that fits in `maxBytes` of UTF-8, never splitting a character: the name travels in a
 * job message that must stay under the queue's 1 KiB, whatever the script it is written in.
 */
function truncateUtf8(text: string, maxBytes: number): string {
  let bytes = 0;
  let end = 0;
  for (const character of text) {
    bytes += Buffer.byteLength(character);
    if (bytes > maxBytes) break;
    end += character.length;
  }
  return text.slice(0, end);
}

export interface UploadLimits {
  maxFileBytes: number;
  /** Bodies read at once; further requests wait for one of these slots. */
  concurrentBodies: number;
  /** How long a request waits for a slot before it gets 503. */
  slotWaitMs: number;
  /** Requests that may wait for a slot; one more gets 503 at once. */
  maxQueued: number;
  /** How long a body may take to arrive once its reading starts, before it gets 408. */
  bodyTimeoutMs: number;
}

export interface UploadReader {
  readonly limits: UploadLimits;
  readonly slots: UploadSlots;
  /**
   * Reads `request`'s multipart body: at least one and at most `maxFiles` files in `field`, each stored as it arrives,
   * and the text fields. Any refusal (a file's header, size, the deadline, a malformed body) removes what was stored.
   */
  read(request: Request, requestId: string, field: string, maxFiles?: number): Promise<UploadForm>;
  /** `read` of exactly one file. */
  readOne(request: Request, requestId: string, field: string): Promise<Upload>;
}

/** Multipart overhead (boundaries, part headers, small text fields) allowed on top of the files themselves. */
export const MULTIPART_SLACK_BYTES = 64 * 1024;
const MAX_TEXT_FIELDS = 16;
/** Bytes read before a file's header is inspected; a longer header (JPEG metadata before its frame) is read on, up to the cap. */
const HEADER_BYTES = 64 * 1024;
const MAX_HEADER_BYTES = 1024 * 1024;

export function createUploadReader(deps: { bucket: Bucket; inspect: ImageInspector; limits: UploadLimits }): UploadReader {
  const slots = new UploadSlots(deps.limits.concurrentBodies, deps.limits.slotWaitMs, deps.limits.maxQueued);
  const reader: UploadReader = {
    limits: deps.limits,
    slots,
    async readOne(request, requestId, field) {
      const { uploads } = await reader.read(request, requestId, field, 1);
      return uploads[0]!;
    },
    async read(request, requestId, field, maxFiles = 1) {
      const contentType = request.headers.get("content-type") ?? "";
      if (!/^multipart\/form-data\s*;/i.test(contentType) || !request.body) {
        throw new HttpError(400, "unreadable_body", "the body must be multipart/form-data");
      }
      const release = await slots.acquire();
      if (!release) {
        throw new HttpError(503, "busy", `${slots.capacity} uploads are being read and ${slots.queued} wait; try again in a few seconds`);
      }
      try {
        return await readForm(request.body, contentType, { ...deps, requestId, field, maxFiles });
      } finally {
        release();
      }
    },
  };
  return reader;
}

interface FormRead {
  bucket: Bucket;
  inspect: ImageInspector;
  limits: UploadLimits;
  requestId: string;
  field: string;
  maxFiles: number;
}

async function readForm(body: ReadableStream<Uint8Array>, contentType: string, read: FormRead): Promise<UploadForm> {
  const { limits, field, maxFiles } = read;
  let parser: BusboyInstance;
  try {
    parser = new Busboy({
      headers: { "content-type": contentType },
      limits: { fileSize: limits.maxFileBytes, files: maxFiles + 1, fields: MAX_TEXT_FIELDS, parts: maxFiles + 1 + MAX_TEXT_FIELDS },
    });
  } catch (error) {
    throw new HttpError(400, "unreadable_body", "the body must be multipart/form-data with a boundary", { cause: error });
  }
  // The first failure wins; everything in progress (the body, each file's store) stops at it. The files' streams are
  // destroyed with it rather than raced against it: a race per chunk would keep every chunk reachable until the end.
  const failed = Promise.withResolvers<never>();
  failed.promise.catch(() => {});
  let failure: Error | undefined;
  const files: BusboyFileStream[] = [];
  const fail = (error: unknown) => {
    failure ??= error as Error;
    failed.reject(failure);
    for (const file of files) file.destroy(failure);
  };
  const deadline = setTimeout(
    () => fail(new HttpError(408, "body_timeout", `the body did not arrive within ${limits.bodyTimeoutMs} ms`)),
    limits.bodyTimeoutMs,
  );
  const tooLarge = () => new HttpError(413, "file_too_large", `a file in '${field}' has more than ${limits.maxFileBytes} bytes, the limit`);

  const storing: Promise<Upload>[] = [];
  const fields: Record<string, string> = {};
  parser.on("file", (name, stream, fileName, _encoding, mimeType) => {
    if (name !== field || failure) return void stream.resume();
    if (storing.length === maxFiles) return fail(new HttpError(400, "too_many_files", `at most ${maxFiles} file(s) in '${field}'`));
    stream.on("limit", () => fail(tooLarge()));
    files.push(stream);
    const stored = storeFile(stream, fileName, mimeType || "application/octet-stream", storing.length, read);
    stored.catch(fail);
    storing.push(stored);
  });
  parser.on("field", (name, value) => {
    fields[name] = value;
  });
  parser.on("error", (error) => fail(new HttpError(400, "unreadable_body", "the multipart body is malformed", { cause: error })));
  const parsed = new Promise<void>((resolve) => parser.on("finish", resolve));

  const reader = body.getReader();
  const pump = async () => {
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
      // A chunked body has no length to refuse it by up front: it is refused as soon as it passes the limit.
      if (received > maxFiles * limits.maxFileBytes + MULTIPART_SLACK_BYTES) throw tooLarge();
      if (!parser.write(value)) await new Promise((resolve) => parser.once("drain", resolve));
    }
    parser.end();
    await parsed;
  };
  try {
    await Promise.race([pump(), failed.promise]);
    const uploads = await Promise.race([Promise.all(storing), failed.promise]);
    if (uploads.length === 0) throw new HttpError(400, "missing_field", `multipart field '${field}' with a file is required`);
    return { uploads, fields };
  } catch (error) {
    fail(error);
    await reader.cancel().catch(() => {});
    parser.destroy();
    const settled = await Promise.allSettled(storing);
    await Promise.all(settled.map((result) => (result.status === "fulfilled" ? read.bucket.delete(result.value.key).catch(() => {}) : undefined)));
    throw failure;
  } finally {
    clearTimeout(deadline);
  }
}

/** Streams one file into the bucket, header first: a file refused from its header is never stored. */
async function storeFile(
  stream: BusboyFileStream,
  fileName: string,
  contentType: string,
  index: number,
  read: FormRead,
): Promise<Upload> {
  const { name, safeFileName } = uploadNames(fileName);
  const key = index === 0 ? `${read.requestId}/${safeFileName}` : `${read.requestId}/${index}-${safeFileName}`;
  const chunks: AsyncIterator<Uint8Array> = stream[Symbol.asyncIterator]();
  const hash = new Bun.CryptoHasher("sha256");
  let bytes = 0;
  const next = async (): Promise<Uint8Array | undefined> => {
    const { done, value } = await chunks.next();
    if (done) return undefined;
    bytes += value.byteLength;
    hash.update(value);
    return value;
  };

  const head: Uint8Array[] = [];
  let ended = false;
  for (let wanted = HEADER_BYTES; ; wanted *= 4) {
    while (!ended && bytes < wanted) {
      const chunk = await next();
      if (chunk) head.push(chunk);
      else ended = true;
    }
    if (bytes === 0) throw new HttpError(400, "empty_file", `the file in '${read.field}' is empty`);
    const problem = await read.inspect(Buffer.concat(head));
    if (!problem) break;
    // A header that goes on past what was read: read on. Past the cap, the app's full decode judges the file.
    if (problem.code === "truncated" && !ended) {
      if (wanted < MAX_HEADER_BYTES) continue;
      break;
    }
    throw new HttpError(IMAGE_PROBLEM_STATUS[problem.code], problem.code, problem.message);
  }

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = head.shift() ?? (await next());
      if (chunk) controller.enqueue(chunk);
      else controller.close();
    },
  });
  await read.bucket.putStream(key, body, { contentType });
  return { key, name, contentType, sha256: hash.digest("hex"), bytes };
}

/** The answer's name and the object key's segment, from an untrusted file name. */
function uploadNames(fileName: string): { name: string; safeFileName: string } {
  const baseName = fileName.split(/[\\/]/).pop() ?? "";
  // Control characters would grow sixfold as JSON escapes in the job message, and break the text/plain answer.
  const withoutExtension = baseName.replace(/\.[^.]*$/, "").replace(/[\u0000-\u001f\u007f]/g, "_");
  // A name of dots only would be a path segment, not a key, once it reaches an HTTP client.
  const name = /^\.*$/.test(withoutExtension) ? "upload" : truncateUtf8(withoutExtension, MAX_NAME_BYTES);
  return { name, safeFileName: baseName.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_").slice(0, 120) || "upload" };
}
