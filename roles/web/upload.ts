/** Turns an untrusted multipart file into validated image bytes, or a clear 4xx. */
import { MAX_NAME_BYTES } from "../deployment.ts";
import { HttpError } from "./http-error.ts";

export interface Upload {
  bytes: Uint8Array;
  /** The file name without directories or extension: the classic answer's prefix and the output key. */
  name: string;
  /** A safe object-key segment derived from the file name. */
  safeFileName: string;
  contentType: string;
  sha256: string;
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

export async function readUpload(file: File, field: string, maxBytes: number, inspect: ImageInspector): Promise<Upload> {
  if (file.size === 0) throw new HttpError(400, "empty_file", `the file in '${field}' is empty`);
  if (file.size > maxBytes) {
    throw new HttpError(413, "file_too_large", `the file in '${field}' has ${file.size} bytes; the limit is ${maxBytes}`);
  }
  const bytes = new Uint8Array(await file.arrayBuffer());
  const problem = await inspect(bytes);
  if (problem) throw new HttpError(IMAGE_PROBLEM_STATUS[problem.code], problem.code, problem.message);
  const baseName = file.name.split(/[\\/]/).pop() ?? "";
  // Control characters would grow sixfold as JSON escapes in the job message, and break the text/plain answer.
  const withoutExtension = baseName.replace(/\.[^.]*$/, "").replace(/[\u0000-\u001f\u007f]/g, "_");
  // A name of dots only would be a path segment, not a key, once it reaches an HTTP client.
  const name = /^\.*$/.test(withoutExtension) ? "upload" : truncateUtf8(withoutExtension, MAX_NAME_BYTES);
  return {
    bytes,
    name,
    safeFileName: baseName.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_").slice(0, 120) || "upload",
    contentType: file.type || "application/octet-stream",
    sha256: new Bun.CryptoHasher("sha256").update(bytes).digest("hex"),
  };
}
