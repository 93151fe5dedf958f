/**
 * S3's ListMultipartUploads, which fauxqs does not answer (it takes `GET /bucket?uploads` for a listing of objects):
 * the front sees every upload created (`POST ?uploads`), completed (`POST ?uploadId`) and aborted (`DELETE ?uploadId`)
 * and answers the listing from that.
 */
import { escapeXml } from "./xml-tree.ts";

interface OpenUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

export class OpenUploads {
  /** Bucket -> upload id -> upload. */
  private readonly byBucket = new Map<string, Map<string, OpenUpload>>();

  /** Notes what a successful object request did to the bucket's uploads; answers the same response. */
  async track(method: string, url: URL, response: Response): Promise<Response> {
    const [bucket = "", ...rest] = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    const uploadId = url.searchParams.get("uploadId");
    if (method === "POST" && url.searchParams.has("uploads")) {
      const body = await response.text();
      const created = /<UploadId>([^<]+)<\/UploadId>/.exec(body)?.[1];
      if (created) {
        const open = this.byBucket.get(bucket) ?? new Map<string, OpenUpload>();
        open.set(created, { key: rest.join("/"), uploadId: created, initiated: new Date() });
        this.byBucket.set(bucket, open);
      }
      return new Response(body, { status: response.status, headers: response.headers });
    }
    if (uploadId !== null && (method === "DELETE" || method === "POST")) this.byBucket.get(bucket)?.delete(uploadId);
    return response;
  }

  forgetBucket(bucket: string): void {
    this.byBucket.delete(bucket);
  }

  /** ListMultipartUploadsResult of one page (the front's buckets never hold 1000 open uploads). */
  listXml(bucket: string, prefix: string): string {
    const open = [...(this.byBucket.get(bucket)?.values() ?? [])].filter((upload) => upload.key.startsWith(prefix)).sort((a, b) => a.key.localeCompare(b.key));
    const entries = open
      .map((upload) => `<Upload><Key>${escapeXml(upload.key)}</Key><UploadId>${escapeXml(upload.uploadId)}</UploadId><StorageClass>STANDARD</StorageClass><Initiated>${upload.initiated.toISOString()}</Initiated></Upload>`)
      .join("");
    return `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${escapeXml(bucket)}</Bucket><Prefix>${escapeXml(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${entries}</ListMultipartUploadsResult>`;
  }
}
