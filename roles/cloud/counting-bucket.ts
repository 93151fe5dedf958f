/** A bucket that counts the bytes written to and read from the keys under one prefix: what a store's design costs. */
import type { Bucket, PutOptions } from "./types.ts";

export interface ByteCounts {
  written: number;
  read: number;
}

export function countingBucket(bucket: Bucket, prefix: string): { bucket: Bucket; counts: ByteCounts } {
  const counts: ByteCounts = { written: 0, read: 0 };
  const size = (body: Uint8Array | string) => (typeof body === "string" ? Buffer.byteLength(body) : body.byteLength);
  const counted = (key: string) => key.startsWith(prefix);
  const wrapped: Bucket = Object.assign(Object.create(bucket) as Bucket, {
    put: async (key: string, body: Uint8Array | string, options?: PutOptions) => {
      if (counted(key)) counts.written += size(body);
      return bucket.put(key, body, options);
    },
    putIf: async (key: string, body: Uint8Array | string, expected: string | undefined, options?: PutOptions) => {
      if (counted(key)) counts.written += size(body);
      return bucket.putIf(key, body, expected, options);
    },
    get: async (key: string) => {
      const body = await bucket.get(key);
      if (counted(key)) counts.read += body?.byteLength ?? 0;
      return body;
    },
    read: async (key: string) => {
      const object = await bucket.read(key);
      if (counted(key)) counts.read += object?.body.byteLength ?? 0;
      return object;
    },
  });
  return { bucket: wrapped, counts };
}
