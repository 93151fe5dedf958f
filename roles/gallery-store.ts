/**
 * The gallery persisted through the blob store. The web role is its one writer (mutations in order, saved
 * after each); app processes read it and pick up a new version without a restart.
 */
import { Gallery, GalleryFormatError, type FaceDetails, type Match, type SubjectSummary } from "../model/gallery.ts";
import type { Bucket } from "./cloud/types.ts";
import { GALLERY_KEY } from "./deployment.ts";
import type { Logger } from "./log.ts";

export type GalleryErrorCode = "embedding_missing" | "embedding_mismatch";

/** An enrollment the gallery cannot take; what it means to a caller is the caller's to say. */
export class GalleryError extends Error {
  constructor(
    readonly code: GalleryErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "GalleryError";
  }
}

async function loadGallery(bucket: Bucket): Promise<Gallery | undefined> {
  const bytes = await bucket.get(GALLERY_KEY);
  return bytes ? Gallery.deserialize(bytes) : undefined;
}

export class GalleryWriter {
  private pending: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly bucket: Bucket,
    private gallery: Gallery | undefined,
  ) {}

  /**
   * A stored gallery that cannot be read does not keep the web role from starting (nor the routes that would repair
   * it): its bytes are kept aside, the log says where, and the gallery starts empty; the next enrollment replaces it.
   */
  static async open(bucket: Bucket, log?: Logger): Promise<GalleryWriter> {
    const bytes = await bucket.get(GALLERY_KEY);
    if (!bytes) return new GalleryWriter(bucket, undefined);
    try {
      return new GalleryWriter(bucket, Gallery.deserialize(bytes));
    } catch (error) {
      if (!(error instanceof GalleryFormatError)) throw error;
      const keptAt = `${GALLERY_KEY}.unreadable-${Date.now()}`;
      await bucket.put(keptAt, bytes, { contentType: "application/octet-stream" });
      log?.error("gallery_unreadable", { reason: error.message, keptAt, now: "starting with an empty gallery; the next enrollment replaces the stored one" });
      return new GalleryWriter(bucket, undefined);
    }
  }

  list(): SubjectSummary[] {
    return this.gallery?.list() ?? [];
  }

  faceCount(subject: string): number {
    return this.list().find((summary) => summary.subject === subject)?.faces ?? 0;
  }

  /** The embeddings' length; undefined while nobody is enrolled. */
  get dimensions(): number | undefined {
    return this.gallery?.dimensions;
  }

  facesOf(subject: string): (FaceDetails & { faceId: string })[] {
    return this.gallery?.facesOf(subject) ?? [];
  }

  search(embedding: Float32Array, k: number): Match[] {
    return this.gallery && this.gallery.size > 0 ? this.gallery.search(embedding, k) : [];
  }

  subjectSimilarity(subject: string, embedding: Float32Array): number | undefined {
    return this.gallery?.subjectSimilarity(subject, embedding);
  }

  /** Enrolls the embedding an app instance left at `key`, then removes it. */
  enrollFromKey(subject: string, key: string, details?: FaceDetails): Promise<string> {
    return this.inOrder(async () => {
      const bytes = await this.bucket.get(key);
      if (!bytes) throw new GalleryError("embedding_missing", "the app role's embedding is missing");
      const embedding = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      this.gallery ??= new Gallery(embedding.length);
      if (embedding.length !== this.gallery.dimensions) {
        throw new GalleryError("embedding_mismatch", `the gallery holds ${this.gallery.dimensions}-d embeddings but the model gives ${embedding.length}-d ones: re-enroll after changing the embedder`);
      }
      const faceId = this.gallery.enroll(subject, embedding, details);
      await this.save();
      // The face is enrolled: an embedding object left behind is harmless, a 500 now would invite a second enrollment.
      await this.bucket.delete(key).catch(() => {});
      return faceId;
    });
  }

  /** Returns how many faces were removed. */
  removeSubject(subject: string): Promise<number> {
    return this.inOrder(async () => {
      const removed = this.gallery?.removeSubject(subject) ?? 0;
      if (removed > 0) await this.save();
      return removed;
    });
  }

  /** Removes one face if it is the subject's; returns whether it was. */
  removeFace(subject: string, faceId: string): Promise<boolean> {
    return this.inOrder(async () => {
      if (!this.gallery?.facesOf(subject).some((face) => face.faceId === faceId)) return false;
      this.gallery.removeFace(faceId);
      await this.save();
      return true;
    });
  }

  /** Renames a subject; into an existing one only when `merge` is set. */
  renameSubject(from: string, to: string, merge: boolean): Promise<"renamed" | "unknown_subject" | "subject_exists"> {
    return this.inOrder(async () => {
      if (!this.gallery || this.faceCount(from) === 0) return "unknown_subject";
      if (from !== to && this.faceCount(to) > 0 && !merge) return "subject_exists";
      this.gallery.renameSubject(from, to);
      await this.save();
      return "renamed";
    });
  }

  /** Stores the gallery; if that fails, goes back to the stored one, so what is listed is what the apps see. */
  private async save(): Promise<void> {
    if (!this.gallery) return;
    try {
      await this.bucket.put(GALLERY_KEY, this.gallery.serialize(), { contentType: "application/octet-stream" });
    } catch (error) {
      this.gallery = await loadGallery(this.bucket).catch(() => this.gallery);
      throw error;
    }
  }

  private inOrder<T>(mutation: () => Promise<T>): Promise<T> {
    const result = this.pending.then(mutation);
    this.pending = result.catch(() => {});
    return result;
  }
}

/** An app process's view of the gallery, re-read when its stored version changes (checked at most every refreshMs). */
export class GalleryReader {
  private gallery: Gallery | undefined;
  private loadedVersion: string | undefined;
  private checkedAt = -Infinity;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly bucket: Bucket,
    private readonly refreshMs = 500,
    private readonly now: () => number = Date.now,
  ) {}

  async current(): Promise<Gallery | undefined> {
    // While nobody is enrolled, every job looks again: the first enrollment must count at once.
    if (!this.gallery || this.now() - this.checkedAt >= this.refreshMs) {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
      await this.refreshing;
    }
    return this.gallery;
  }

  private async refresh(): Promise<void> {
    const version = await this.bucket.version(GALLERY_KEY);
    if (version !== this.loadedVersion) {
      this.gallery = version === undefined ? undefined : await loadGallery(this.bucket);
      this.loadedVersion = version;
    }
    this.checkedAt = this.now();
  }
}
