/**
 * The one way uploads are read: an untrusted multipart body, each file streamed into the input bucket as it arrives
 * (checked from its header first, hashed on the way), or a clear 4xx with nothing stored. A bounded number of bodies
 * is read at once, a few per client, each within a deadline and at a minimum pace, so memory does not grow with the
 * number or the size of uploads, and slow senders cannot hold the slots.
 */
import Busboy, { type BusboyFileStream, type BusboyInstance } from "@fastify/busboy";
import type { TSchema } from "@sinclair/typebox";
import type { Bucket } from "../cloud/types.ts";
import { MAX_NAME_BYTES } from "../deployment.ts";
import { behindPaceAt, type BodyPace } from "./body-pace.ts";
import { clientOf } from "./client-address.ts";
import { HttpError } from "./http-error.ts";
import { UploadSlots } from "./upload-slots.ts";

/** An image stored in the input bucket; its bytes are not held. */
export interface Upload {
  /** Its key in the input bucket: `<request id>/<safe file name>`. */
  key: string;
  /** The multipart field it came in. */
  field: string;
  /** The file name as sent (only for answers and records, never a key). */
  fileName: string;
  /** The file name without directories or extension: the classic answer's prefix and the output key. */
  name: string;
  contentType: string;
  sha256: string;
  bytes: number;
}

/** A file refused on its own (its header, its size) while the rest of its body was read: nothing of it is stored. */
export interface RefusedFile {
  field: string;
  fileName: string;
  refusal: HttpError;
}

/** The files a route takes: each field's most files. Every field named must hold at least one. */
export type FileFields = Record<string, number>;

/** What a multipart body held: the files of the asked-for fields, stored, and its text fields. */
export interface UploadForm {
  uploads: Upload[];
  fields: Record<string, string>;
}

export type ImageProblemCode =
  | "empty"
  | "not_an_image"
  | "truncated"
  | "unsupported_format"
  | "too_many_pixels"
  | "metadata_too_large"
  | "too_many_scans"
  | "undecodable";

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
  metadata_too_large: 400,
  too_many_scans: 400,
  undecodable: 400,
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
  /** Most bytes of one file; a file past it is refused on its own where a route answers part by part. */
  maxFileBytes: number;
  /** Most bytes of a whole body, its files and multipart framing together; a body past it is refused whole. */
  maxBodyBytes: number;
  /** Bodies read at once; further requests wait for one of these slots. */
  concurrentBodies: number;
  /** Bodies one client (address) reads at once; its further requests wait, and other clients' overtake them. */
  perClient: number;
  /** How long a request waits for a slot before it gets 503. */
  slotWaitMs: number;
  /** Requests that may wait for a slot; one more takes a place of the client with the most waiting, or is refused (slot-policy.ts). */
  maxQueued: number;
  /** How long a body may take to arrive once its reading starts, before it gets 408. */
  bodyTimeoutMs: number;
  /** The slowest a body may arrive before it gets 408. */
  pace: BodyPace;
}

export interface UploadReader {
  readonly limits: UploadLimits;
  readonly slots: UploadSlots;
  /**
   * Reads `request`'s multipart body: the files of `files`' fields, each stored as it arrives, and the text fields.
   * Any refusal (a file's header, size, the deadline, a malformed body) removes what was stored.
   */
  read(request: Request, requestId: string, files: FileFields): Promise<UploadForm>;
  /** `read` of exactly one file. */
  readOne(request: Request, requestId: string, field: string): Promise<Upload>;
  /**
   * Up to `maxFiles` files of `field`, in order, each stored or refused on its own (its header, its size), so a route
   * can answer part by part. A failure of the body itself (deadline, malformed, past the body bound) still refuses
   * them all.
   */
  readEach(request: Request, requestId: string, field: string, maxFiles: number): Promise<(Upload | RefusedFile)[]>;
}

/** Multipart overhead (boundaries, part headers, small text fields) allowed on top of the files themselves. */
export const MULTIPART_SLACK_BYTES = 64 * 1024;
const MAX_TEXT_FIELDS = 16;
/** Bytes read before a file's header is inspected; a longer header (JPEG metadata before its frame) is read on, up to the cap. */
const HEADER_BYTES = 64 * 1024;
const MAX_HEADER_BYTES = 1024 * 1024;
/**
 * Bodies pass through this thread as chunks that live only until they are stored, yet long enough (an asynchronous
 * write, an S3 part) to outlive JSC's young generation, so under a burst 100 to 240 MB of them gathered before JSC
 * collected them (scripts/burst.ts, measured). The reader collects after every COLLECT_AFTER_BYTES of files stored: a
 * full collection took 20 to 250 ms on the loaded 2-core machine, once per six or so 9.7 MB uploads.
 */
const COLLECT_AFTER_BYTES = 64 * 1024 * 1024;

/**
 * The most a body may hold for a route taking `files` files: the body bound, or less where that many files within
 * the file limit (and their framing) come to less; a body past it is refused as soon as that is known, from its
 * `content-length` before it is read, or, chunked, when it passes it.
 */
export function bodyBound(limits: UploadLimits, files: FileFields): { bytes: number; refusal: HttpError } {
  const fields = Object.keys(files);
  const filesBytes = fields.reduce((sum, field) => sum + files[field]!, 0) * limits.maxFileBytes + MULTIPART_SLACK_BYTES;
  if (filesBytes < limits.maxBodyBytes) return { bytes: filesBytes, refusal: fileTooLarge(fields.join("', '"), limits.maxFileBytes) };
  return { bytes: limits.maxBodyBytes, refusal: bodyTooLarge(limits.maxBodyBytes) };
}

export const bodyTooLarge = (maxBodyBytes: number) => new HttpError(413, "body_too_large", `the request body has more than ${maxBodyBytes} bytes, the limit for a whole body`);

export function createUploadReader(deps: { bucket: Bucket; inspect: ImageInspector; limits: UploadLimits }): UploadReader {
  const { limits } = deps;
  const slots = new UploadSlots({ capacity: limits.concurrentBodies, perClient: limits.perClient, maxQueued: limits.maxQueued }, limits.slotWaitMs);
  let storedSinceCollection = 0;
  const stored = (parts: (Upload | RefusedFile)[]) => {
    for (const part of parts) if ("bytes" in part) storedSinceCollection += part.bytes;
    if (storedSinceCollection < COLLECT_AFTER_BYTES) return;
    storedSinceCollection = 0;
    Bun.gc(true);
  };
  const readParts = async (request: Request, requestId: string, files: FileFields, each: boolean) => {
    const contentType = request.headers.get("content-type") ?? "";
    if (!/^multipart\/form-data\s*;/i.test(contentType) || !request.body) {
      throw new HttpError(400, "unreadable_body", "the body must be multipart/form-data");
    }
    const bound = bodyBound(deps.limits, files);
    if (Number(request.headers.get("content-length") ?? 0) > bound.bytes) throw bound.refusal;
    const admission = await slots.acquire(clientOf(request));
    if ("refused" in admission) {
      if (admission.refused === "busy") {
        throw new HttpError(503, "busy", `${slots.limits.capacity} uploads are being read and ${slots.queued} wait; try again in a few seconds`);
      }
      throw new HttpError(429, "too_many_uploads", `this address has its share of the uploads being read (${limits.perClient} at once) and of the places to wait; send the next once one is answered`, {
        headers: { "retry-after": "1" },
      });
    }
    const { release } = admission;
    try {
      const form = await readForm(request.body, contentType, { ...deps, requestId, files, each, bound });
      stored(form.parts);
      return form;
    } finally {
      release();
    }
  };
  const reader: UploadReader = {
    limits: deps.limits,
    slots,
    async read(request, requestId, files) {
      const { parts, fields } = await readParts(request, requestId, files, false);
      return { uploads: parts.filter((part): part is Upload => "key" in part), fields };
    },
    async readOne(request, requestId, field) {
      const { uploads } = await reader.read(request, requestId, { [field]: 1 });
      return uploads[0]!;
    },
    async readEach(request, requestId, field, maxFiles) {
      return (await readParts(request, requestId, { [field]: maxFiles }, true)).parts;
    },
  };
  return reader;
}

interface FormRead {
  bucket: Bucket;
  inspect: ImageInspector;
  limits: UploadLimits;
  requestId: string;
  files: FileFields;
  /** Each file refused on its own rather than the whole body. */
  each: boolean;
  bound: ReturnType<typeof bodyBound>;
}

const fileTooLarge = (field: string, maxFileBytes: number) =>
  new HttpError(413, "file_too_large", `a file in '${field}' has more than ${maxFileBytes} bytes, the limit`);

async function readForm(
  body: ReadableStream<Uint8Array>,
  contentType: string,
  read: FormRead,
): Promise<{ parts: (Upload | RefusedFile)[]; fields: Record<string, string> }> {
  const { limits, files: wanted } = read;
  const totalFiles = Object.values(wanted).reduce((sum, count) => sum + count, 0);
  let parser: BusboyInstance;
  try {
    parser = new Busboy({
      headers: { "content-type": contentType },
      limits: { fileSize: limits.maxFileBytes, files: totalFiles + 1, fields: MAX_TEXT_FIELDS, parts: totalFiles + 1 + MAX_TEXT_FIELDS },
    });
  } catch (error) {
    throw new HttpError(400, "unreadable_body", "the body must be multipart/form-data with a boundary", { cause: error });
  }
  // The first failure wins; everything in progress (the body, each file's store) stops at it. The files' streams are
  // destroyed with it rather than raced against it: a race per chunk would keep every chunk reachable until the end.
  const failed = Promise.withResolvers<never>();
  failed.promise.catch(() => {});
  let failure: Error | undefined;
  const streams: BusboyFileStream[] = [];
  const fail = (error: unknown) => {
    failure ??= error as Error;
    failed.reject(failure);
    for (const stream of streams) stream.destroy(failure);
  };
  const deadline = setTimeout(
    () => fail(new HttpError(408, "body_timeout", `the body did not arrive within ${limits.bodyTimeoutMs} ms`)),
    limits.bodyTimeoutMs,
  );
  // The pace is judged on the sender's own time: the time this server held the body back (its store was slow, the
  // parser full) does not count against it.
  const started = performance.now();
  let bodyBytes = 0;
  let heldBackMs = 0;
  let heldSince: number | undefined;
  let arrived = false;
  const sendersTime = () => performance.now() - started - heldBackMs - (heldSince === undefined ? 0 : performance.now() - heldSince);
  let paceTimer: ReturnType<typeof setTimeout> | undefined;
  const checkPace = () => {
    if (arrived || failure) return;
    const left = behindPaceAt(bodyBytes, limits.pace) - sendersTime();
    if (left === Infinity) return;
    if (left <= 0 && heldSince === undefined) {
      return fail(new HttpError(408, "body_timeout", `the body arrived slower than ${limits.pace.minBytesPerSecond} bytes a second`));
    }
    paceTimer = setTimeout(checkPace, Math.max(left, 100));
  };
  checkPace();

  const storing: Promise<Upload | RefusedFile>[] = [];
  const received = new Map<string, number>();
  const fields: Record<string, string> = {};
  parser.on("file", (field, stream, fileName, _encoding, mimeType) => {
    const most = Object.hasOwn(wanted, field) ? wanted[field]! : 0;
    if (most === 0 || failure) return void stream.resume();
    const count = received.get(field) ?? 0;
    if (count === most) return fail(new HttpError(400, "too_many_files", `at most ${most} file(s) in '${field}'`));
    received.set(field, count + 1);
    // Refused on its own, a file too large is cut by busboy and its store abandoned; otherwise the body stops at once.
    if (!read.each) stream.on("limit", () => fail(fileTooLarge(field, limits.maxFileBytes)));
    streams.push(stream);
    const stored: Promise<Upload | RefusedFile> = storeFile(stream, field, fileName, mimeType || "application/octet-stream", storing.length, read).catch(
      (error: unknown) => {
        if (read.each && !failure && error instanceof HttpError && error.status < 500) return { field, fileName, refusal: error };
        throw error;
      },
    );
    stored.catch(fail);
    storing.push(stored);
  });
  parser.on("field", (name, value) => {
    fields[name] = value;
  });
  parser.on("error", (error) => fail(new HttpError(400, "unreadable_body", "the multipart body is malformed", { cause: error })));
  // Past the parts a form of this route holds, the rest of the body is no form the service takes: refused there,
  // rather than read to its end (busboy would skip every further part, one at a time).
  const tooManyParts = () => fail(new HttpError(400, "too_many_parts", `the form has more than ${totalFiles + 1 + MAX_TEXT_FIELDS} parts or ${MAX_TEXT_FIELDS} text fields`));
  parser.on("partsLimit", tooManyParts);
  parser.on("fieldsLimit", tooManyParts);
  const parsed = new Promise<void>((resolve) => parser.on("finish", resolve));

  const reader = body.getReader();
  const pump = async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bodyBytes += value.byteLength;
      // A chunked body has no length to refuse it by up front: it is refused as soon as it passes the bound.
      if (bodyBytes > read.bound.bytes) throw read.bound.refusal;
      if (!parser.write(value)) {
        heldSince = performance.now();
        await new Promise((resolve) => parser.once("drain", resolve));
        heldBackMs += performance.now() - heldSince;
        heldSince = undefined;
      }
    }
    arrived = true;
    parser.end();
    await parsed;
  };
  try {
    await Promise.race([pump(), failed.promise]);
    const parts = await Promise.race([Promise.all(storing), failed.promise]);
    const missing = Object.keys(wanted).find((field) => !received.has(field));
    if (missing !== undefined) throw new HttpError(400, "missing_field", `multipart field '${missing}' with a file is required`);
    return { parts, fields };
  } catch (error) {
    fail(error);
    await reader.cancel().catch(() => {});
    parser.destroy();
    const settled = await Promise.allSettled(storing);
    await Promise.all(
      settled.map((result) => (result.status === "fulfilled" && "key" in result.value ? read.bucket.delete(result.value.key).catch(() => {}) : undefined)),
    );
    throw failure;
  } finally {
    clearTimeout(deadline);
    clearTimeout(paceTimer);
  }
}

/** Streams one file into the bucket, header first: a file refused from its header is never stored. */
async function storeFile(
  stream: BusboyFileStream,
  field: string,
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
  let headBytes: Uint8Array;
  for (let wanted = HEADER_BYTES; ; wanted *= 4) {
    while (!ended && bytes < wanted) {
      const chunk = await next();
      if (chunk) head.push(chunk);
      else ended = true;
    }
    if (bytes === 0) throw new HttpError(400, "empty_file", `the file in '${field}' is empty`);
    headBytes = Buffer.concat(head);
    const problem = await read.inspect(headBytes);
    if (!problem) break;
    // A header that goes on past what was read: read on. Past the cap, the app's full decode judges the file.
    if (problem.code === "truncated" && !ended) {
      if (wanted < MAX_HEADER_BYTES) continue;
      break;
    }
    if (read.each) {
      // Refused on its own, the rest of the file is read past, so the parser goes on to the next part; its size is
      // then known, and a file over the limit is refused for that first, as a whole body would be.
      while (!(await chunks.next()).done);
      if (stream.truncated) throw fileTooLarge(field, read.limits.maxFileBytes);
    }
    throw new HttpError(IMAGE_PROBLEM_STATUS[problem.code], problem.code, problem.message);
  }

  // A file past the limit ends cut short (busboy's `truncated`): it is refused, or its stream fails so that its store
  // is abandoned (the temporary file removed, the multipart upload aborted), and nothing of it is stored.
  if (ended) {
    // It ended within what was read for its header, so it is held whole already: stored in one put (one file write;
    // on S3 one PutObject, without a stream's part buffer).
    if (stream.truncated) throw fileTooLarge(field, read.limits.maxFileBytes);
    head.length = 0;
    await read.bucket.put(key, headBytes, { contentType });
  } else {
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const chunk = head.shift() ?? (await next());
        if (chunk) controller.enqueue(chunk);
        else if (stream.truncated) controller.error(fileTooLarge(field, read.limits.maxFileBytes));
        else controller.close();
      },
    });
    await read.bucket.putStream(key, body, { contentType });
  }
  return { key, field, fileName, name, contentType, sha256: hash.digest("hex"), bytes };
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

/**
 * The hooks of a route whose body the upload reader takes: Elysia leaves the body unparsed (its parser would build
 * every file in memory first), and the OpenAPI document still lists the multipart body, from its TypeBox schema.
 */
export function streamedBody(body: TSchema, detail: { summary: string; tags: string[] }) {
  return {
    parse: "none" as const,
    detail: { ...detail, requestBody: { required: true, content: { "multipart/form-data": { schema: body } } } },
  };
}
