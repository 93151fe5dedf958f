/** A bucket on S3. Keys go to S3 as they are, once checked. */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from "@aws-sdk/client-s3";
import { checkObjectKey } from "../object-key.ts";
import type { BlobStore, Bucket, PutOptions, VersionedObject } from "../types.ts";

/** S3's smallest part of a multipart upload (but the last). */
const PART_BYTES = 5 * 1024 * 1024;

class S3Bucket implements Bucket {
  constructor(
    private readonly client: S3Client,
    readonly name: string,
  ) {}

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.name, Key: checkObjectKey(key), Body: body, ContentType: options.contentType, Metadata: options.metadata }));
  }

  /**
   * One part buffer, filled from the stream and sent, then filled again: a stream holds at most one part (S3's
   * smallest, 5 MiB) however long it is. A stream that fits in one part is one PutObject; a longer one a multipart
   * upload, aborted if the stream fails. (lib-storage's Upload holds two parts a stream and copies each.)
   */
  async putStream(key: string, body: ReadableStream<Uint8Array>, options: PutOptions = {}): Promise<void> {
    const object = { Bucket: this.name, Key: checkObjectKey(key) };
    const described = { ContentType: options.contentType, Metadata: options.metadata };
    const part = new Uint8Array(PART_BYTES);
    let filled = 0;
    let uploadId: string | undefined;
    const parts: CompletedPart[] = [];
    const sendPart = async () => {
      uploadId ??= (await this.client.send(new CreateMultipartUploadCommand({ ...object, ...described }))).UploadId;
      const PartNumber = parts.length + 1;
      const { ETag } = await this.client.send(new UploadPartCommand({ ...object, UploadId: uploadId, PartNumber, Body: part.subarray(0, filled) }));
      parts.push({ ETag, PartNumber });
      filled = 0;
    };
    try {
      for await (const chunk of body) {
        for (let offset = 0; offset < chunk.byteLength; ) {
          const taken = Math.min(chunk.byteLength - offset, PART_BYTES - filled);
          part.set(chunk.subarray(offset, offset + taken), filled);
          filled += taken;
          offset += taken;
          if (filled === PART_BYTES) await sendPart();
        }
      }
      if (uploadId === undefined) {
        await this.client.send(new PutObjectCommand({ ...object, ...described, Body: part.subarray(0, filled) }));
        return;
      }
      if (filled > 0) await sendPart();
      await this.client.send(new CompleteMultipartUploadCommand({ ...object, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
    } catch (error) {
      if (uploadId !== undefined) await this.client.send(new AbortMultipartUploadCommand({ ...object, UploadId: uploadId })).catch(() => {});
      throw error;
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return (await this.read(key))?.body;
  }

  async read(key: string): Promise<VersionedObject | undefined> {
    try {
      const object = await this.client.send(new GetObjectCommand({ Bucket: this.name, Key: checkObjectKey(key) }));
      return { body: object.Body ? await object.Body.transformToByteArray() : new Uint8Array(), version: object.ETag ?? "" };
    } catch (error) {
      if (error instanceof NoSuchKey) return undefined;
      throw error;
    }
  }

  /**
   * S3's conditional writes: 412 PreconditionFailed when the condition does not hold, 409 ConditionalRequestConflict
   * when another conditional write of the key is under way, 404 for If-Match on a key that is gone.
   */
  async putIf(key: string, body: Uint8Array | string, expected: string | undefined, options: PutOptions = {}): Promise<string | undefined> {
    const condition = expected === undefined ? { IfNoneMatch: "*" } : { IfMatch: expected };
    try {
      const answer = await this.client.send(
        new PutObjectCommand({ Bucket: this.name, Key: checkObjectKey(key), Body: body, ContentType: options.contentType, Metadata: options.metadata, ...condition }),
      );
      return answer.ETag ?? "";
    } catch (error) {
      if ([404, 409, 412].includes(statusOf(error) ?? 0)) return undefined;
      throw error;
    }
  }

  async version(key: string): Promise<string | undefined> {
    return (await this.head(key))?.ETag;
  }

  async metadata(key: string): Promise<Record<string, string> | undefined> {
    const head = await this.head(key);
    return head && (head.Metadata ?? {});
  }

  private async head(key: string) {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.name, Key: checkObjectKey(key) }));
    } catch (error) {
      if (error instanceof NotFound || statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.name, Key: checkObjectKey(key) }));
  }

  async count(): Promise<number> {
    let total = 0;
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.name, ContinuationToken: token }));
      total += page.KeyCount ?? page.Contents?.length ?? 0;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return total;
  }

  async list(prefix: string, startAfter?: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.name, Prefix: prefix, StartAfter: startAfter, ContinuationToken: token }));
      for (const object of page.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }
}

export class S3BlobStore implements BlobStore {
  constructor(private readonly client: S3Client) {}

  bucket(name: string): Bucket {
    return new S3Bucket(this.client, name);
  }
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}
