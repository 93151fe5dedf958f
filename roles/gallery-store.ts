/**
 * The gallery persisted through the blob store as immutable segments, a log of small changes and a manifest
 * (roles/README.md, "The gallery store"). Every change is one create-only object at the next sequence number, so two
 * writers never lose an update; a process catches up by reading only the changes after the last one it applied; the
 * lease holder folds the log into segments, rewriting the segments that hold removed faces, so a removed face's
 * embedding leaves storage within a bound.
 */
import { randomUUID } from "node:crypto";
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { Gallery, GalleryFormatError, type FaceDetails, type StoredFace, type SubjectSummary } from "../model/gallery.ts";
import { GalleryIndex } from "../model/gallery-index.ts";
import { BLOCK_ROWS } from "../model/dot-kernel.ts";
import type { Bucket } from "./cloud/types.ts";
import { GALLERY_LOG_PREFIX, GALLERY_MANIFEST_KEY, GALLERY_SEGMENT_PREFIX, LEGACY_GALLERY_KEY, UNREADABLE_GALLERY_KEY_PREFIX } from "./deployment.ts";
import type { Logger } from "./log.ts";
import { decodeMessage, MessageFormatError } from "./messages.ts";

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

/** Faces per sealed segment: 4,096 faces of 128 dimensions is a 2 MiB object, read in one GET. */
export const SEGMENT_FACES = 4096;
/**
 * Log entries after the manifest at which the lease holder seals them into segments: what a cold reader reads one by
 * one. Entries, not sequence numbers: an import's `reserve` entry takes a sequence number per face it reserves.
 */
export const SEAL_AFTER_ENTRIES = 1024;
/**
 * Fewer entries are sealed once the writer has made no change for SEAL_IDLE_MS: a cold reader (an app instance booting
 * into a burst) then reads the manifest, a few segments and at most one round of entries, not up to 1,023 GETs.
 */
export const SEAL_WHEN_IDLE_ENTRIES = 16;
export const SEAL_IDLE_MS = 5_000;
/**
 * The newest entries of the log a compaction keeps, even those a manifest covers: a reader that many entries behind
 * still catches up from the log, however often the log is sealed; one further behind loads the manifest again.
 */
export const KEPT_LOG_ENTRIES = 1024;
/** Tries of one change before giving up: each failed try means another writer appended in between. */
const MAX_APPEND_ATTEMPTS = 100;
/** Log entries and segments read at once. */
const READ_CONCURRENCY = 16;
/** Loads retried when a compaction deleted a segment between reading the manifest and the segment. */
const MAX_LOAD_ATTEMPTS = 5;

const Text = Type.String();
const At = Type.Number({ description: "ms since the epoch, when the change was made" });
/** An enrolled face's id is `f` and its change's sequence number. */
const ChangeSchema = Type.Union([
  Type.Object({
    op: Type.Literal("enroll"),
    at: At,
    writer: Text,
    subject: Text,
    createdAt: Text,
    source: Text,
    /** Base64 of the little-endian Float32 embedding; absent once the face was removed and the entry erased. */
    embedding: Type.Optional(Text),
  }),
  Type.Object({ op: Type.Literal("removeFace"), at: At, writer: Text, faceId: Text }),
  Type.Object({ op: Type.Literal("removeSubject"), at: At, writer: Text, subject: Text }),
  Type.Object({ op: Type.Literal("rename"), at: At, writer: Text, from: Text, to: Text }),
  /**
   * The ids of the next `faces` sequence numbers (this one included) go to an import's faces; no entry takes them.
   * It fixes the gallery's dimensions as an enrollment does, so nothing of another dimension is logged meanwhile.
   */
  Type.Object({
    op: Type.Literal("reserve"),
    at: At,
    writer: Text,
    faces: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    dimensions: Type.Integer({ minimum: 1, maximum: 4096 }),
  }),
  /** Segments written by an import, with faces under ids reserved before: they join the gallery as they are. */
  Type.Object({ op: Type.Literal("import"), at: At, writer: Text, segments: Type.Array(Type.Object({ key: Text, faces: Type.Integer({ minimum: 0 }) })) }),
]);
type Change = Static<typeof ChangeSchema>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type ChangeRequest = DistributiveOmit<Change, "at" | "writer">;

const ManifestSchema = Type.Object({
  format: Type.Literal(1),
  /** Every change up to this sequence number is in the segments; the log goes on after it. */
  through: Type.Integer({ minimum: 0 }),
  segments: Type.Array(Type.Object({ key: Text, faces: Type.Integer({ minimum: 0 }) })),
});
type Manifest = Static<typeof ManifestSchema>;

const SEQUENCE_DIGITS = 16;
export const logKey = (sequence: number): string => `${GALLERY_LOG_PREFIX}${String(sequence).padStart(SEQUENCE_DIGITS, "0")}`;
const sequenceOf = (key: string): number => Number(key.slice(GALLERY_LOG_PREFIX.length));
const faceIdOf = (sequence: number): string => `f${sequence}`;

const encodeEmbedding = (embedding: Float32Array): string => Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength).toString("base64");
function decodeEmbedding(base64: string): Float32Array {
  const bytes = Buffer.from(base64, "base64");
  if (bytes.byteLength % 4 !== 0) throw new GalleryFormatError("a logged embedding is damaged");
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** A stored object of the gallery, or GalleryFormatError naming the damaged key (an operator's to repair or restore). */
function decodeStored<T extends TSchema>(schema: T, bytes: Uint8Array, key: string): Static<T> {
  try {
    return decodeMessage(schema, new TextDecoder().decode(bytes));
  } catch (error) {
    if (error instanceof MessageFormatError) throw new GalleryFormatError(`the gallery object ${key} is damaged: restore it from a backup or a version of the bucket`);
    throw error;
  }
}

/** `work` on every item, at most `limit` at once; results in the items' order. */
async function inParallel<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** A segment, a log entry or the manifest went missing under a load: a compaction ran meanwhile; load again. */
class MovedError extends Error {}

/** A face as a segment holds it; its embedding only in a reader's replica. */
type SegmentFace = FaceDetails & { faceId: string; subject: string; embedding?: Float32Array };
type ReadSegment = { key: string; stored: { dimensions: number; faces: readonly SegmentFace[] } };

/**
 * One process's copy of the stored gallery at a sequence number: the manifest it started from, then every change
 * after it applied in order. A reader's (an app instance's) holds the whole Gallery, vectors and all; a writer's (the
 * web role's) holds only the names (a GalleryIndex), with where each face is stored (its segment, or the log) and what
 * changed since the manifest, which is what a compaction needs: a compaction and an export read the vectors from the
 * store as they go.
 */
class Replica {
  /** The reader's gallery. */
  gallery: Gallery | undefined;
  /** The names: the reader's gallery's own, or the writer's. */
  names: GalleryIndex | undefined;
  dimensions: number | undefined;
  sequence = 0;
  manifest: { body: Manifest; version: string } | undefined;
  /** Segments holding a face that was removed or renamed since the manifest: rewritten at the next compaction. */
  readonly dirtySegments = new Set<string>();
  /** Segments imported since the manifest: the next manifest names them as they are. */
  readonly importedSegments: Manifest["segments"] = [];
  /** Faces removed since the manifest: their logged embeddings are erased at the next compaction. */
  readonly removedFaces: string[] = [];
  /** When the oldest removal or rename after the manifest was made: the erasure clock runs from it. */
  oldestRemovalAt: number | undefined;
  /** Log entries applied after the manifest: what a cold reader reads one by one after the segments. */
  entriesSinceManifest = 0;

  private constructor(readonly role: "reader" | "writer") {}

  static async load(bucket: Bucket, role: "reader" | "writer"): Promise<Replica> {
    for (let attempt = 1; ; attempt++) {
      try {
        const replica = new Replica(role);
        await replica.loadManifest(bucket);
        await replica.catchUp(bucket, true);
        return replica;
      } catch (error) {
        if (!(error instanceof MovedError) || attempt === MAX_LOAD_ATTEMPTS) throw error;
      }
    }
  }

  private async loadManifest(bucket: Bucket): Promise<void> {
    const stored = await bucket.read(GALLERY_MANIFEST_KEY);
    if (!stored) return;
    const manifest = decodeStored(ManifestSchema, stored.body, GALLERY_MANIFEST_KEY);
    this.manifest = { body: manifest, version: stored.version };
    this.sequence = manifest.through;
    this.reserve(manifest.segments.reduce((sum, { faces }) => sum + faces, 0));
    await this.addSegments(bucket, manifest.segments);
  }

  /**
   * Applies the changes after the last one applied; returns how many. A log truncated past them throws MovedError.
   * The entries are read first (small), so room for every face they add is made at once; an import's segments are
   * then read READ_CONCURRENCY at once and applied in order as soon as they can be, so only those in flight or
   * waiting for an earlier one are held.
   */
  async catchUp(bucket: Bucket, loading = false): Promise<number> {
    const keys = await bucket.list(GALLERY_LOG_PREFIX, logKey(this.sequence));
    if (keys.length > 0 && sequenceOf(keys[0]!) !== this.sequence + 1) throw new MovedError("the log was compacted past this replica");
    const changes = await inParallel(keys, READ_CONCURRENCY, async (key) => {
      const bytes = await bucket.get(key);
      if (!bytes) throw new MovedError(`log entry ${key} is gone`);
      return decodeStored(ChangeSchema, bytes, key);
    });
    const added = changes.reduce((sum, change) => sum + (change.op === "enroll" ? 1 : change.op === "import" ? change.segments.reduce((faces, segment) => faces + segment.faces, 0) : 0), 0);
    this.reserve(added);
    const imported: (ReadSegment[] | undefined)[] = new Array(changes.length);
    let next = 0;
    const applyReady = () => {
      for (; next < changes.length; next++) {
        const change = changes[next]!;
        if (change.op === "import") {
          const segments = imported[next];
          if (!segments) return;
          imported[next] = undefined;
          this.addFaces(segments);
        }
        this.apply(sequenceOf(keys[next]!), change);
      }
    };
    const imports = [...changes.keys()].filter((index) => changes[index]!.op === "import");
    await inParallel(imports, READ_CONCURRENCY, async (index) => {
      const change = changes[index]!;
      if (change.op !== "import") return;
      imported[index] = await inParallel(change.segments, READ_CONCURRENCY, ({ key }) => this.readSegment(bucket, key));
      applyReady();
    });
    applyReady();
    // A load, or a catch-up over a bulk import, leaves hundreds of megabytes of short-lived garbage at a million faces
    // (the segments' bytes and labels): collected now, the allocator reuses it rather than growing past it (an app
    // instance that caught up with a 1M import held 2.4 GB, against 1.1 GB after a load that collected).
    if (loading || added >= SEGMENT_FACES) Bun.gc(true);
    return keys.length;
  }

  private async readSegment(bucket: Bucket, key: string): Promise<ReadSegment> {
    const bytes = await bucket.get(key);
    if (!bytes) throw new MovedError(`segment ${key} is gone`);
    return { key, stored: this.role === "reader" ? Gallery.read(bytes) : Gallery.readLabels(bytes) };
  }

  /**
   * Reads segments (READ_CONCURRENCY at once) and adds their faces as each arrives, so that no more than that many
   * segments' bytes are held at once.
   */
  private async addSegments(bucket: Bucket, segments: Manifest["segments"]): Promise<void> {
    await inParallel(segments, READ_CONCURRENCY, async ({ key }) => this.addFaces([await this.readSegment(bucket, key)]));
  }

  /** Makes room for `faces` more faces at once: a load reads many segments, and the matrix need not double as they come. */
  private reserve(faces: number): void {
    if (this.gallery) this.gallery.reserve(this.size + faces);
    else if (this.names) this.names.reserve(this.size + faces);
    else this.pendingCapacity += faces;
  }

  /** Room asked for before the gallery existed (its dimensions come with its first face). */
  private pendingCapacity = 0;

  get size(): number {
    return this.names?.size ?? 0;
  }

  /** Makes the gallery (or the names) on the first face, and holds the gallery to one dimension. */
  private holding(dimensions: number, what: string): void {
    if (this.dimensions === undefined) {
      this.dimensions = dimensions;
      if (this.role === "reader") {
        // An app instance shows no face's details: it does not keep them.
        this.gallery = new Gallery(dimensions, Math.max(1, this.pendingCapacity), BLOCK_ROWS, false);
        this.names = this.gallery.names;
      } else {
        this.names = new GalleryIndex();
        this.names.reserve(this.pendingCapacity);
      }
    }
    if (dimensions !== this.dimensions) throw new GalleryFormatError(`${what} has ${dimensions} dimensions, the gallery ${this.dimensions}`);
  }

  /** Adds segments' faces, read by the caller (an import's, as its writer wrote them). */
  addFaces(segments: readonly ReadSegment[]): void {
    for (const { key, stored } of segments) {
      this.holding(stored.dimensions, `segment ${key}`);
      for (const face of stored.faces) this.insert(face, face.embedding, key);
    }
  }

  private insert(face: FaceDetails & { faceId: string; subject: string }, embedding: Float32Array | undefined, segment?: string): void {
    const details = { createdAt: face.createdAt, source: face.source };
    if (!this.gallery) this.names!.insert(face.faceId, face.subject, details, segment);
    else if (embedding) this.gallery.insert(face.faceId, face.subject, embedding, details, segment);
    else throw new Error(`face ${face.faceId} came without its embedding`);
  }

  /** Applies one change; an import's segments were added by the caller. */
  apply(sequence: number, change: Change): void {
    if (sequence !== this.sequence + 1) throw new Error(`change ${sequence} applied after ${this.sequence}`);
    this.sequence = sequence;
    this.entriesSinceManifest++;
    // Only the writer compacts: what a compaction must rewrite or erase.
    const touch = (faceIds: string[], removed: boolean) => {
      if (this.role === "reader") return;
      if (removed) this.removedFaces.push(...faceIds);
      for (const faceId of faceIds) {
        const row = this.names?.rowOfFace(faceId);
        const segment = row === undefined ? undefined : this.names!.segmentAt(row);
        if (segment !== undefined) this.dirtySegments.add(segment);
      }
      this.oldestRemovalAt ??= change.at;
    };
    const facesOf = (subject: string) => (this.role === "reader" ? [] : (this.names?.rowsOf(subject).map((row) => this.names!.faceIdAt(row)) ?? []));
    const held = this.gallery ?? this.names;
    switch (change.op) {
      case "enroll": {
        // An erased entry's face was removed later in the log: it never reaches the gallery.
        if (change.embedding === undefined) return;
        const embedding = decodeEmbedding(change.embedding);
        this.holding(embedding.length, `the log's change ${sequence}`);
        this.insert({ faceId: faceIdOf(sequence), subject: change.subject, createdAt: change.createdAt, source: change.source }, embedding);
        return;
      }
      case "removeFace":
        touch([change.faceId], true);
        held?.removeFace(change.faceId);
        return;
      case "removeSubject":
        touch(facesOf(change.subject), true);
        if (this.gallery) this.gallery.removeSubject(change.subject);
        else for (const faceId of facesOf(change.subject)) this.names?.removeFace(faceId);
        return;
      case "rename":
        touch(facesOf(change.from), false);
        held?.renameSubject(change.from, change.to);
        return;
      case "reserve":
        this.holding(change.dimensions, `the log's change ${sequence}`);
        this.sequence = sequence + change.faces - 1;
        return;
      case "import":
        if (this.role === "writer") this.importedSegments.push(...change.segments);
    }
  }
}

/** What a compaction decision reads: what changed since the manifest, and how long the writer has made no change. */
export interface CompactionState {
  entries: number;
  oldestRemovalAt: number | undefined;
  idleMs: number;
}

/** Whether the lease holder should compact now: a pure decision from what changed since the manifest, and since when. */
export function compactionDue(state: CompactionState, now: number, eraseWithinMs: number, checkEveryMs: number): boolean {
  if (state.entries >= SEAL_AFTER_ENTRIES) return true;
  if (state.entries >= SEAL_WHEN_IDLE_ENTRIES && state.idleMs >= SEAL_IDLE_MS) return true;
  // Early enough that the next check's compaction still ends inside the bound.
  return state.oldestRemovalAt !== undefined && now - state.oldestRemovalAt >= eraseWithinMs - 2 * checkEveryMs;
}

/**
 * Reads the pre-segment single-blob gallery once, if it is there: into an empty segmented store, writes its faces as
 * segments under a manifest through its last face id (so new ids never meet old ones), then deletes the blob. A blob
 * that cannot be read, or one found beside a segmented store that already holds changes (a stale copy), is kept aside
 * and not read.
 */
async function migrateLegacy(bucket: Bucket, log?: Logger): Promise<void> {
  const stored = await bucket.read(LEGACY_GALLERY_KEY);
  if (!stored) return;
  const setAside = async (event: string, level: "error" | "warn", now: string) => {
    const keptAt = `${UNREADABLE_GALLERY_KEY_PREFIX}${Date.now()}`;
    await bucket.put(keptAt, stored.body, { contentType: "application/octet-stream" });
    await bucket.delete(LEGACY_GALLERY_KEY);
    log?.[level](event, { keptAt, now });
  };
  let legacy: Gallery;
  try {
    legacy = Gallery.deserialize(stored.body);
  } catch (error) {
    if (!(error instanceof GalleryFormatError)) throw error;
    return setAside("gallery_unreadable", "error", "the gallery goes on without it");
  }
  const storeInUse = (await bucket.version(GALLERY_MANIFEST_KEY)) !== undefined || (await bucket.list(GALLERY_LOG_PREFIX)).length > 0;
  if (storeInUse) return setAside("gallery_legacy_ignored", "warn", "the segmented gallery already holds changes: the legacy blob is not read");
  const faces = [...legacy.faces()];
  const through = faces.reduce((highest, { faceId }) => Math.max(highest, Number(faceId.slice(1)) || 0), 0);
  const segments = await writeSegments(bucket, legacy.dimensions, faces, through);
  const manifest: Manifest = { format: 1, through, segments };
  if ((await bucket.putIf(GALLERY_MANIFEST_KEY, JSON.stringify(manifest), undefined, { contentType: "application/json" })) === undefined) {
    await Promise.all(segments.map(({ key }) => bucket.delete(key)));
  }
  await bucket.delete(LEGACY_GALLERY_KEY);
  log?.info("gallery_migrated", { faces: faces.length, segments: segments.length });
}

async function writeSegments(bucket: Bucket, dimensions: number, faces: readonly StoredFace[], through: number): Promise<Manifest["segments"]> {
  const chunks: StoredFace[][] = [];
  for (let start = 0; start < faces.length; start += SEGMENT_FACES) chunks.push(faces.slice(start, start + SEGMENT_FACES));
  return inParallel(chunks, READ_CONCURRENCY, async (chunk) => {
    const key = `${GALLERY_SEGMENT_PREFIX}${String(through).padStart(SEQUENCE_DIGITS, "0")}-${randomUUID()}`;
    await bucket.put(key, Gallery.serializeFaces(dimensions, chunk), { contentType: "application/octet-stream" });
    return { key, faces: chunk.length };
  });
}

/** What a change does to the gallery as this writer holds it: the change to log (none: nothing to do) and its answer. */
type Decision<T> = (names: GalleryIndex | undefined, dimensions: number | undefined, faceId: string) => { change?: ChangeRequest; result: T };

export interface CompactionOutcome {
  compacted: boolean;
  segmentsWritten: number;
  segmentsDeleted: number;
  entriesErased: number;
  entriesDeleted: number;
}

export interface GalleryWriterOptions {
  /** Called after each change this writer stores: its owner's cue to look for an idle seal SEAL_IDLE_MS later. */
  onChange?: () => void;
  /** The newest log entries a compaction keeps (KEPT_LOG_ENTRIES); fewer lets a test reach a truncated log quickly. */
  keptLogEntries?: number;
}

export class GalleryWriter {
  private pending: Promise<unknown> = Promise.resolve();
  private readonly id = randomUUID();
  /** When this writer last stored a change (Date.now()); undefined: none since it opened. */
  private changedAt: number | undefined;

  private constructor(
    private readonly bucket: Bucket,
    private replica: Replica,
    private readonly log: Logger | undefined,
    private readonly options: GalleryWriterOptions,
  ) {}

  static async open(bucket: Bucket, log?: Logger, options: GalleryWriterOptions = {}): Promise<GalleryWriter> {
    await migrateLegacy(bucket, log);
    return new GalleryWriter(bucket, await Replica.load(bucket, "writer"), log, options);
  }

  /** The sequence number of the last change this writer applied: a job that carries it sees every change up to it. */
  get version(): number {
    return this.replica.sequence;
  }

  /** Applies the changes other writers made since, so what is listed next includes them. */
  latest(): Promise<void> {
    return this.inOrder(() => this.catchUp());
  }

  /** The subjects by name, `count` of them from the `offset`-th (all by default). */
  list(offset?: number, count?: number): SubjectSummary[] {
    return this.replica.names?.list(offset, count) ?? [];
  }

  get subjectCount(): number {
    return this.replica.names?.subjectCount ?? 0;
  }

  /** Subjects and faces, counted as the gallery keeps them. */
  get size(): { subjects: number; faces: number } {
    return { subjects: this.subjectCount, faces: this.replica.size };
  }

  faceCount(subject: string): number {
    return this.replica.names?.faceCount(subject) ?? 0;
  }

  /** The embeddings' length; undefined while nobody is enrolled. */
  get dimensions(): number | undefined {
    return this.replica.dimensions;
  }

  facesOf(subject: string): (FaceDetails & { faceId: string })[] {
    return this.replica.names?.facesOf(subject) ?? [];
  }

  /** Enrolls the embedding an app instance left at `key`, then removes it. */
  enrollFromKey(subject: string, key: string, details: FaceDetails = { createdAt: "", source: "" }): Promise<string> {
    return this.inOrder(async () => {
      const bytes = await this.bucket.get(key);
      if (!bytes) throw new GalleryError("embedding_missing", "the app role's embedding is missing");
      const embedding = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      const faceId = await this.append((_names, dimensions, faceId) => {
        if (dimensions !== undefined && embedding.length !== dimensions) {
          throw new GalleryError("embedding_mismatch", `the gallery holds ${dimensions}-d embeddings but the model gives ${embedding.length}-d ones: re-enroll after changing the embedder`);
        }
        return { change: { op: "enroll", subject, ...details, embedding: encodeEmbedding(embedding) }, result: faceId };
      });
      // The face is enrolled: an embedding object left behind is harmless, a 500 now would invite a second enrollment.
      await this.bucket.delete(key).catch(() => {});
      return faceId;
    });
  }

  /** Returns how many faces were removed. */
  removeSubject(subject: string): Promise<number> {
    return this.inOrder(() =>
      this.append((names) => {
        const removed = names?.faceCount(subject) ?? 0;
        return { change: removed > 0 ? { op: "removeSubject", subject } : undefined, result: removed };
      }),
    );
  }

  /** Removes one face if it is the subject's; returns whether it was. */
  removeFace(subject: string, faceId: string): Promise<boolean> {
    return this.inOrder(() =>
      this.append((names) => {
        const removed = names?.subjectOf(faceId) === subject;
        return { change: removed ? { op: "removeFace", faceId } : undefined, result: removed };
      }),
    );
  }

  /** Renames a subject; into an existing one only when `merge` is set. */
  renameSubject(from: string, to: string, merge: boolean): Promise<"renamed" | "unknown_subject" | "subject_exists"> {
    return this.inOrder(() =>
      this.append((names) => {
        if (!names || names.faceCount(from) === 0) return { result: "unknown_subject" as const };
        if (from !== to && names.faceCount(to) > 0 && !merge) return { result: "subject_exists" as const };
        return { change: from === to ? undefined : { op: "rename", from, to }, result: "renamed" as const };
      }),
    );
  }

  /**
   * Imports faces (already checked: one dimension, normalised) as one segment: the next `faces.length` sequence
   * numbers are reserved for their ids, the segment is written, then one log entry names it. Returns their ids.
   */
  importFaces(faces: readonly { subject: string; embedding: Float32Array; source: string }[]): Promise<string[]> {
    return this.inOrder(async () => {
      const dimensions = faces[0]?.embedding.length;
      if (dimensions === undefined) return [];
      const first = await this.append((_names, held) => {
        if (held !== undefined && held !== dimensions) throw new GalleryError("embedding_mismatch", `the gallery holds ${held}-d embeddings, not ${dimensions}-d ones`);
        return { change: { op: "reserve", faces: faces.length, dimensions }, result: this.replica.sequence + 1 };
      });
      const createdAt = new Date().toISOString();
      const stored = faces.map((face, index) => ({ ...face, faceId: faceIdOf(first + index), createdAt }));
      const segments = await writeSegments(this.bucket, dimensions, stored, first);
      const imported = segments.map(({ key, faces: count }, index) => ({ key, stored: { dimensions, faces: stored.slice(index * SEGMENT_FACES, index * SEGMENT_FACES + count) } }));
      await this.append(() => ({ change: { op: "import", segments }, result: undefined }), imported);
      return stored.map(({ faceId }) => faceId);
    });
  }

  /**
   * Every face as this writer holds it now, segment by segment: its embedding read from the store (its segment, or
   * its log entry), its subject and details as they are when it is read (a face removed meanwhile is left out).
   */
  async *exportFaces(): AsyncGenerator<StoredFace> {
    const faceIds = this.replica.names?.faceIdsBySegment() ?? [];
    // A segment's worth at a time: the ids come grouped by segment, so each segment is read about once.
    for (let start = 0; start < faceIds.length; start += SEGMENT_FACES) {
      yield* await this.inOrder(() => this.readFaces(faceIds.slice(start, start + SEGMENT_FACES)));
    }
  }

  /**
   * The faces of these ids that are still held, their embeddings read from where each is stored: each segment they
   * are in once, and the log entries of the others. Run in order with the changes, so none moves meanwhile.
   */
  private async readFaces(faceIds: readonly string[]): Promise<StoredFace[]> {
    const names = this.replica.names;
    if (!names) return [];
    const bySegment = new Map<string | undefined, number[]>();
    for (const faceId of faceIds) {
      const row = names.rowOfFace(faceId);
      if (row === undefined) continue;
      const segment = names.segmentAt(row);
      const rows = bySegment.get(segment);
      if (rows) rows.push(row);
      else bySegment.set(segment, [row]);
    }
    const face = (row: number, embedding: Float32Array): StoredFace => ({ faceId: names.faceIdAt(row), subject: names.subjectAt(row), embedding, ...names.detailsAt(row) });
    const read = await inParallel([...bySegment], READ_CONCURRENCY, async ([segment, rows]) => {
      if (segment === undefined) {
        return inParallel(rows, READ_CONCURRENCY, async (row) => face(row, await this.loggedEmbedding(names.faceIdAt(row))));
      }
      const bytes = await this.bucket.get(segment);
      if (!bytes) throw new Error(`segment ${segment} is missing from the gallery bucket`);
      const embeddings = new Map(Gallery.read(bytes).faces.map(({ faceId, embedding }) => [faceId, embedding]));
      return rows.map((row) => {
        const embedding = embeddings.get(names.faceIdAt(row));
        if (!embedding) throw new GalleryFormatError(`segment ${segment} lacks face ${names.faceIdAt(row)}`);
        return face(row, embedding.slice());
      });
    });
    return read.flat();
  }

  /** The embedding a face's log entry holds: the face was enrolled since the last compaction. */
  private async loggedEmbedding(faceId: string): Promise<Float32Array> {
    const key = logKey(Number(faceId.slice(1)));
    const bytes = await this.bucket.get(key);
    const change = bytes && decodeStored(ChangeSchema, bytes, key);
    if (change?.op !== "enroll" || change.embedding === undefined) throw new GalleryFormatError(`the log entry ${key} of face ${faceId} holds no embedding`);
    return decodeEmbedding(change.embedding);
  }

  /** Compacts when `compactionDue` says so (the lease holder's periodic check). */
  compactIfDue(now: number, eraseWithinMs: number, checkEveryMs: number): Promise<CompactionOutcome | undefined> {
    return this.inOrder(async () => {
      await this.catchUp();
      const state = { entries: this.replica.entriesSinceManifest, oldestRemovalAt: this.replica.oldestRemovalAt, idleMs: now - (this.changedAt ?? -Infinity) };
      return compactionDue(state, now, eraseWithinMs, checkEveryMs) ? this.compactNow() : undefined;
    });
  }

  /** Folds the log into segments now, rewriting every segment that holds a removed face (`?erase=now`). */
  compact(): Promise<CompactionOutcome> {
    return this.inOrder(async () => {
      await this.catchUp();
      return this.compactNow();
    });
  }

  /**
   * Writes the faces logged since the manifest, the living faces of every segment that held a removed or renamed
   * one, and those of every segment not full, as new segments, and erases the logged embeddings of removed faces;
   * commits a manifest naming the segments over the one read (a conditional put: of two compactions at once, one
   * commits and the other deletes what it wrote). Then deletes the replaced segments and the log entries the previous
   * manifest already covered, but for the newest `keptLogEntries` (a reader further behind loads the manifest again).
   */
  private async compactNow(): Promise<CompactionOutcome> {
    // Another writer's compaction may have replaced segments this replica still names (a refilled one, at every seal):
    // start from the manifest as it is now.
    if ((await this.bucket.version(GALLERY_MANIFEST_KEY)) !== this.replica.manifest?.version) this.replica = await Replica.load(this.bucket, "writer");
    const replica = this.replica;
    const outcome: CompactionOutcome = { compacted: false, segmentsWritten: 0, segmentsDeleted: 0, entriesErased: 0, entriesDeleted: 0 };
    if (replica.entriesSinceManifest === 0 && replica.dirtySegments.size === 0) return outcome;
    const names = replica.names;
    const through = replica.sequence;
    const previous = replica.manifest;
    // Segments not full are refilled with the faces sealed now, so a log sealed often leaves at most one such segment.
    const refilled = [...(previous?.body.segments ?? []), ...replica.importedSegments].filter(({ faces }) => faces < SEGMENT_FACES).map(({ key }) => key);
    const replaced = new Set([...replica.dirtySegments, ...refilled]);
    // The faces to rewrite, a segment's worth at a time: their embeddings are read from the store as they are written.
    const rewritten = names ? names.faceIdsBySegment((segment) => segment === undefined || replaced.has(segment)) : [];
    const written: (Manifest["segments"][number] & { faceIds: string[] })[] = [];
    for (let start = 0; start < rewritten.length; start += SEGMENT_FACES) {
      const faces = await this.readFaces(rewritten.slice(start, start + SEGMENT_FACES));
      const [segment] = await writeSegments(this.bucket, replica.dimensions!, faces, through);
      if (segment) written.push({ ...segment, faceIds: faces.map(({ faceId }) => faceId) });
    }
    // Before the manifest that covers them: once it is committed, a writer that loads it no longer knows these removals,
    // and their entries are kept (KEPT_LOG_ENTRIES). A removed face's id names the entry that enrolled it: migrated
    // faces, and entries deleted by an earlier compaction, have none.
    const erased = await inParallel(replica.removedFaces, READ_CONCURRENCY, async (faceId) => {
      const key = logKey(Number(faceId.slice(1)));
      const stored = await this.bucket.get(key);
      const change = stored && decodeStored(ChangeSchema, stored, key);
      if (change?.op !== "enroll" || change.embedding === undefined) return 0;
      const { embedding: _erased, ...entry } = change;
      await this.bucket.put(key, JSON.stringify(entry), { contentType: "application/json" });
      return 1;
    });
    const entriesErased = erased.reduce<number>((sum, one) => sum + one, 0);
    const kept = (previous?.body.segments ?? []).filter(({ key }) => !replaced.has(key));
    const imported = replica.importedSegments.filter(({ key }) => !replaced.has(key));
    const manifest: Manifest = { format: 1, through, segments: [...kept, ...imported, ...written.map(({ key, faces }) => ({ key, faces }))] };
    const version = await this.bucket.putIf(GALLERY_MANIFEST_KEY, JSON.stringify(manifest), previous?.version, { contentType: "application/json" });
    if (version === undefined) {
      await Promise.all(written.map(({ key }) => this.bucket.delete(key)));
      this.replica = await Replica.load(this.bucket, "writer");
      return outcome;
    }
    await Promise.all([...replaced].map((key) => this.bucket.delete(key)));
    const logged = await this.bucket.list(GALLERY_LOG_PREFIX);
    const keptEntries = this.options.keptLogEntries ?? KEPT_LOG_ENTRIES;
    const covered = logged.slice(0, Math.max(0, logged.length - keptEntries)).filter((key) => sequenceOf(key) <= (previous?.body.through ?? 0));
    await inParallel(covered, READ_CONCURRENCY, (key) => this.bucket.delete(key));

    replica.manifest = { body: manifest, version };
    for (const segment of written) {
      for (const faceId of segment.faceIds) {
        const row = names?.rowOfFace(faceId);
        if (row !== undefined) names!.setSegment(row, segment.key);
      }
    }
    replica.dirtySegments.clear();
    replica.removedFaces.length = 0;
    replica.importedSegments.length = 0;
    replica.oldestRemovalAt = undefined;
    replica.entriesSinceManifest = 0;
    const done = { compacted: true, segmentsWritten: written.length, segmentsDeleted: replaced.size, entriesErased, entriesDeleted: covered.length };
    this.log?.info("gallery_compacted", { through, ...done });
    return done;
  }

  /**
   * Logs the change `decide` makes at the next sequence number, create-only. When another writer took that number
   * first, applies its changes and decides again, so both are kept; when the number holds this writer's own entry (its
   * answer was lost and the SDK's retry failed its own condition), the change is done. The gallery changes only once
   * the change is stored.
   */
  private async append<T>(decide: Decision<T>, imported: readonly ReadSegment[] = []): Promise<T> {
    for (let attempt = 1; attempt <= MAX_APPEND_ATTEMPTS; attempt++) {
      const sequence = this.replica.sequence + 1;
      const { change, result } = decide(this.replica.names, this.replica.dimensions, faceIdOf(sequence));
      if (!change) return result;
      const entry = { ...change, at: Date.now(), writer: `${this.id}-${sequence}` } as Change;
      const body = JSON.stringify(entry);
      const applied = () => {
        this.replica.addFaces(imported);
        this.replica.apply(sequence, entry);
        this.changedAt = Date.now();
        this.options.onChange?.();
        return result;
      };
      if ((await this.bucket.putIf(logKey(sequence), body, undefined, { contentType: "application/json" })) !== undefined) return applied();
      const stored = await this.bucket.get(logKey(sequence));
      if (stored && new TextDecoder().decode(stored) === body) return applied();
      await this.catchUp();
    }
    throw new GalleryError("gallery_contended", `other writers changed the gallery during each of ${MAX_APPEND_ATTEMPTS} tries: try again`);
  }

  private async catchUp(): Promise<void> {
    try {
      await this.replica.catchUp(this.bucket);
    } catch (error) {
      if (!(error instanceof MovedError)) throw error;
      this.replica = await Replica.load(this.bucket, "writer");
    }
  }

  private inOrder<T>(work: () => Promise<T>): Promise<T> {
    const result = this.pending.then(work);
    this.pending = result.catch(() => {});
    return result;
  }
}

/**
 * An app process's view of the gallery: loaded once (the manifest, its segments in parallel, then the log), then kept
 * up by applying only the changes after the last one it applied: at most every refreshMs, and at once for a job that
 * must see a newer version than it holds.
 */
export class GalleryReader {
  private replica: Replica | undefined;
  private checkedAt = -Infinity;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly bucket: Bucket,
    private readonly refreshMs = 2000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The sequence number of the last change applied. */
  get version(): number {
    return this.replica?.sequence ?? 0;
  }

  /** The gallery with every change up to `atLeast` (a job's version) applied, when the store has them. */
  async current(atLeast = 0): Promise<Gallery | undefined> {
    const stale = !this.replica?.gallery || this.version < atLeast || this.now() - this.checkedAt >= this.refreshMs;
    if (stale) {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
      await this.refreshing;
      // A job that asked for more than the refresh in flight had seen.
      if (this.version < atLeast) await (this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined)));
    }
    return this.replica?.gallery;
  }

  private async refresh(): Promise<void> {
    const checkedAt = this.now();
    if (!this.replica) this.replica = await Replica.load(this.bucket, "reader");
    else {
      try {
        await this.replica.catchUp(this.bucket);
      } catch (error) {
        if (!(error instanceof MovedError)) throw error;
        this.replica = await Replica.load(this.bucket, "reader");
      }
    }
    this.checkedAt = checkedAt;
  }
}
