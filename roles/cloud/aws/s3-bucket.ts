/** A bucket on S3. Keys go to S3 as they are, once checked. */
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, NoSuchKey, NotFound, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { checkObjectKey } from "../object-key.ts";
import type { BlobStore, Bucket, PutOptions } from "../types.ts";

const MIN_PART_BYTES = 5 * 1024 * 1024;

class S3Bucket implements Bucket {
  constructor(
    private readonly client: S3Client,
    readonly name: string,
  ) {}

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.name, Key: checkObjectKey(key), Body: body, ContentType: options.contentType, Metadata: options.metadata }));
  }

  async putStream(key: string, body: ReadableStream<Uint8Array>, options: PutOptions = {}): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.name, Key: checkObjectKey(key), Body: body, ContentType: options.contentType, Metadata: options.metadata },
      // S3's smallest part, one part in flight: each stream holds at most two parts (the one sent, the one filling).
      // A stream shorter than a part goes as one PutObject; a failed stream aborts its multipart upload.
      partSize: MIN_PART_BYTES,
      queueSize: 1,
    });
    await upload.done();
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      const object = await this.client.send(new GetObjectCommand({ Bucket: this.name, Key: checkObjectKey(key) }));
      return object.Body ? await object.Body.transformToByteArray() : new Uint8Array();
    } catch (error) {
      if (error instanceof NoSuchKey) return undefined;
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
      if (error instanceof NotFound || (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
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
}

export class S3BlobStore implements BlobStore {
  constructor(private readonly client: S3Client) {}

  bucket(name: string): Bucket {
    return new S3Bucket(this.client, name);
  }
}
