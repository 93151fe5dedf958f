/**
 * The integrity header S3 requires on some calls: Content-MD5 or one x-amz-checksum-* of the body ("You must use this
 * header as a message integrity check"; in S3's model, the operations whose `httpChecksum` has
 * `requestChecksumRequired`). Without one S3 answers 400 InvalidRequest; with a wrong one, InvalidDigest or BadDigest.
 * SDK v3 sends x-amz-checksum-crc32 on each such call. fauxqs checks none of this: the front asks here first and
 * passes nothing refused on.
 */
/** A 400 the emulated S3 answers where fauxqs would take the request (here and in s3-lifecycle.ts). */
export interface S3Refusal {
  code: "MalformedXML" | "InvalidArgument" | "InvalidRequest" | "InvalidDigest" | "BadDigest";
  message: string;
}

export const invalidRequest = (message: string): S3Refusal => ({ code: "InvalidRequest", message });

/** The calls our code sends that require the header, by `<method> ?<bucket subresource>`. */
export const INTEGRITY_REQUIRED = new Map([
  ["PUT ?lifecycle", "PutBucketLifecycleConfiguration"],
  ["PUT ?tagging", "PutBucketTagging"],
  ["PUT ?publicAccessBlock", "PutPublicAccessBlock"],
  ["PUT ?encryption", "PutBucketEncryption"],
  ["POST ?delete", "DeleteObjects"],
]);

/** The call of `INTEGRITY_REQUIRED` this request is, if any: a bucket's (path `/<bucket>`) subresource. */
export function integrityRequiredBy(method: string, url: URL): string | undefined {
  if (url.pathname.split("/").filter(Boolean).length !== 1) return undefined;
  return [...url.searchParams.keys()].map((name) => INTEGRITY_REQUIRED.get(`${method} ?${name}`)).find((call) => call !== undefined);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const base64Bytes = (value: string) => (BASE64.test(value) ? Buffer.from(value, "base64") : undefined);
const hashed = (algorithm: "md5" | "sha1" | "sha256") => (body: Uint8Array) => new Bun.CryptoHasher(algorithm).update(body).digest();

/** The x-amz-checksum-* S3 takes, by name: its length, and its digest where the emulator computes it (CRC32C and CRC64NVME: length only). */
const CHECKSUMS: Record<string, { bytes: number; digest?: (body: Uint8Array) => Buffer }> = {
  crc32: {
    bytes: 4,
    digest: (body) => {
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(Bun.hash.crc32(body));
      return crc;
    },
  },
  crc32c: { bytes: 4 },
  crc64nvme: { bytes: 8 },
  sha1: { bytes: 20, digest: hashed("sha1") },
  sha256: { bytes: 32, digest: hashed("sha256") },
};

/** The integrity header a call that requires one must carry, checked against the body. */
export function integrityRefusal(headers: Headers, body: Uint8Array): S3Refusal | undefined {
  const md5 = headers.get("content-md5");
  if (md5 !== null) {
    const given = base64Bytes(md5);
    if (given?.length !== 16) return { code: "InvalidDigest", message: "The Content-MD5 you specified was not valid." };
    if (!given.equals(hashed("md5")(body))) return { code: "BadDigest", message: "The Content-MD5 you specified did not match what we received." };
  }
  const sent = Object.keys(CHECKSUMS).filter((name) => headers.has(`x-amz-checksum-${name}`));
  if (sent.length > 1) return invalidRequest("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.");
  if (sent.length === 0 && headers.has("x-amz-sdk-checksum-algorithm")) {
    return invalidRequest("x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.");
  }
  if (md5 === null && sent.length === 0) return invalidRequest("Missing required header for this request: Content-MD5 OR x-amz-checksum-*");
  for (const name of sent) {
    const { bytes, digest } = CHECKSUMS[name]!;
    const given = base64Bytes(headers.get(`x-amz-checksum-${name}`)!);
    if (given?.length !== bytes) return invalidRequest(`Value for x-amz-checksum-${name} header is invalid.`);
    if (digest && !given.equals(digest(body))) return { code: "BadDigest", message: `The ${name.toUpperCase()} you specified did not match the calculated checksum.` };
  }
  return undefined;
}

/** What S3 answers to a request of a call that requires the header without a good one; undefined when it takes it. */
export async function requestIntegrityRefusal(request: Request): Promise<S3Refusal | undefined> {
  if (integrityRequiredBy(request.method, new URL(request.url)) === undefined) return undefined;
  return integrityRefusal(request.headers, new Uint8Array(await request.clone().arrayBuffer()));
}
