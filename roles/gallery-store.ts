/**
 * The gallery persisted through the blob store. Web processes write it, each mutation a conditional put over the
 * version it read (re-read, re-applied and retried when another writer came first), so no writer loses another's
 * update; app processes read it and pick up a new version without a restart.
 */
import { Gallery, GalleryFormatError, type FaceDetails, type Match, type SubjectSummary } from "../model/gallery.ts";
import type { Bucket } from "./cloud/types.ts";
import { GALLERY_KEY, UNREADABLE_GALLERY_KEY_PREFIX } from "./deployment.ts";
import type { Logger } from "./log.ts";

export type GalleryErrorCode = "embedding_missing" | "embedding_mismatch" | "gallery_contended";

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

/** Conditional saves tried before a mutation gives up: each failure means another writer saved in between. */
const MAX_SAVE_ATTEMPTS = 10;
const RETRY_PAUSE_MS = 10;

interface StoredGallery {
  gallery: Gallery;
  version: string;
}

/** A stored gallery that cannot be read counts as none: the next save replaces it (over its version). */
function readable(bytes: Uint8Array): Gallery | undefined {
  try {
    return Gallery.deserialize(bytes);
  } catch (error) {
    if (error instanceof GalleryFormatError) return undefined;
    throw error;
  }
}

async function readStored(bucket: Bucket): Promise<StoredGallery | undefined> {
  const stored = await bucket.read(GALLERY_KEY);
  const gallery = stored && readable(stored.body);
  return gallery && { gallery, version: stored!.version };
}

/** For readers: a damaged gallery throws GalleryFormatError, which the app answers as such. */
async function loadGallery(bucket: Bucket): Promise<Gallery | undefined> {
  const bytes = await bucket.get(GALLERY_KEY);
  return bytes ? Gallery.deserialize(bytes) : undefined;
}

function faceCountIn(gallery: Gallery, subject: string): number {
  return gallery.list().find((summary) => summary.subject === subject)?.faces ?? 0;
}

/** What a mutation does to the gallery as stored: the gallery to save (undefined: nothing to save) and its answer. */
type Mutation<T> = (stored: Gallery | undefined) => { save: Gallery | undefined; result: T };

export class GalleryWriter {
  private pending: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly bucket: Bucket,
    /** The gallery as last stored, by this writer or read from the bucket; never one whose save failed. */
    private stored: StoredGallery | undefined,
  ) {}

  /**
   * A stored gallery that cannot be read does not keep the web role from starting (nor the routes that would repair
   * it): its bytes are kept aside, the log says where, and the gallery starts empty; the next enrollment replaces it.
   */
  static async open(bucket: Bucket, log?: Logger): Promise<GalleryWriter> {
    const stored = await bucket.read(GALLERY_KEY);
    const gallery = stored && readable(stored.body);
    if (stored && !gallery) {
      const keptAt = `${UNREADABLE_GALLERY_KEY_PREFIX}${Date.now()}`;
      await bucket.put(keptAt, stored.body, { contentType: "application/octet-stream" });
      log?.error("gallery_unreadable", { keptAt, now: "starting with an empty gallery; the next enrollment replaces the stored one" });
    }
    return new GalleryWriter(bucket, gallery && { gallery, version: stored!.version });
  }

  /** Reads the stored gallery again when another writer changed it, so what is listed next includes their changes. */
  latest(): Promise<void> {
    return this.inOrder(() => this.refresh());
  }

  /** The subjects as this writer last read or saved them (`latest` reads them again). */
  list(): SubjectSummary[] {
    return this.stored?.gallery.list() ?? [];
  }

  faceCount(subject: string): number {
    return this.stored ? faceCountIn(this.stored.gallery, subject) : 0;
  }

  /** The embeddings' length; undefined while nobody is enrolled. */
  get dimensions(): number | undefined {
    return this.stored?.gallery.dimensions;
  }

  facesOf(subject: string): (FaceDetails & { faceId: string })[] {
    return this.stored?.gallery.facesOf(subject) ?? [];
  }

  search(embedding: Float32Array, k: number): Match[] {
    const gallery = this.stored?.gallery;
    return gallery && gallery.size > 0 ? gallery.search(embedding, k) : [];
  }

  subjectSimilarity(subject: string, embedding: Float32Array): number | undefined {
    return this.stored?.gallery.subjectSimilarity(subject, embedding);
  }

  /** Enrolls the embedding an app instance left at `key`, then removes it. */
  enrollFromKey(subject: string, key: string, details?: FaceDetails): Promise<string> {
    return this.inOrder(async () => {
      const bytes = await this.bucket.get(key);
      if (!bytes) throw new GalleryError("embedding_missing", "the app role's embedding is missing");
      const embedding = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      const faceId = await this.mutate((stored) => {
        const gallery = stored ?? new Gallery(embedding.length);
        if (embedding.length !== gallery.dimensions) {
          throw new GalleryError("embedding_mismatch", `the gallery holds ${gallery.dimensions}-d embeddings but the model gives ${embedding.length}-d ones: re-enroll after changing the embedder`);
        }
        return { save: gallery, result: gallery.enroll(subject, embedding, details) };
      });
      // The face is enrolled: an embedding object left behind is harmless, a 500 now would invite a second enrollment.
      await this.bucket.delete(key).catch(() => {});
      return faceId;
    });
  }

  /** Returns how many faces were removed. */
  removeSubject(subject: string): Promise<number> {
    return this.inOrder(() =>
      this.mutate((stored) => {
        const removed = stored?.removeSubject(subject) ?? 0;
        return { save: removed > 0 ? stored : undefined, result: removed };
      }),
    );
  }

  /** Removes one face if it is the subject's; returns whether it was. */
  removeFace(subject: string, faceId: string): Promise<boolean> {
    return this.inOrder(() =>
      this.mutate((stored) => {
        if (!stored?.facesOf(subject).some((face) => face.faceId === faceId)) return { save: undefined, result: false };
        stored.removeFace(faceId);
        return { save: stored, result: true };
      }),
    );
  }

  /** Renames a subject; into an existing one only when `merge` is set. */
  renameSubject(from: string, to: string, merge: boolean): Promise<"renamed" | "unknown_subject" | "subject_exists"> {
    return this.inOrder(() =>
      this.mutate((stored) => {
        if (!stored || faceCountIn(stored, from) === 0) return { save: undefined, result: "unknown_subject" as const };
        if (from !== to && faceCountIn(stored, to) > 0 && !merge) return { save: undefined, result: "subject_exists" as const };
        stored.renameSubject(from, to);
        return { save: stored, result: "renamed" as const };
      }),
    );
  }

  /**
   * Applies `mutation` to a fresh copy of the stored gallery and saves it only over the version it was read at. When
   * another writer saved in between, reads theirs and applies the mutation again, so both changes are kept. The
   * listed gallery becomes the new one only once it is stored; when a save fails, it is the one stored.
   */
  private async mutate<T>(mutation: Mutation<T>): Promise<T> {
    let tried: { bytes: Uint8Array; result: T } | undefined;
    for (let attempt = 1; ; attempt++) {
      const stored = await this.bucket.read(GALLERY_KEY);
      const current = stored && readable(stored.body);
      this.stored = current && { gallery: current, version: stored!.version };
      // The last try was stored after all: its answer was lost and the SDK's retry failed its own condition.
      if (tried && stored && Buffer.from(stored.body).equals(tried.bytes)) return tried.result;
      const { save, result } = mutation(stored && readable(stored.body));
      if (!save) return result;
      tried = { bytes: save.serialize(), result };
      let version: string | undefined;
      try {
        version = await this.bucket.putIf(GALLERY_KEY, tried.bytes, stored?.version, { contentType: "application/octet-stream" });
      } catch (error) {
        await this.refresh().catch(() => {});
        throw error;
      }
      if (version !== undefined) {
        this.stored = { gallery: save, version };
        return result;
      }
      if (attempt === MAX_SAVE_ATTEMPTS) {
        await this.refresh().catch(() => {});
        throw new GalleryError("gallery_contended", `other writers changed the gallery during each of ${MAX_SAVE_ATTEMPTS} tries: try again`);
      }
      await Bun.sleep(RETRY_PAUSE_MS * attempt * Math.random());
    }
  }

  private async refresh(): Promise<void> {
    if ((await this.bucket.version(GALLERY_KEY)) !== this.stored?.version) this.stored = await readStored(this.bucket);
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
