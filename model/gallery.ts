/**
 * The gallery of enrolled faces: pure and storage-free. Embeddings live in a Float32 matrix (row i = face i, in blocks
 * of 2^20 rows) with an int8 shadow, searched with WebAssembly SIMD kernels: an int8 pass over every row, then an exact
 * float32 re-rank of every row the int8 error bound cannot rule out, so the answer is the float32 brute force's.
 * Removal swaps the last row into the hole. The faces' ids, subjects and details are a GalleryIndex whose rows are the
 * matrix's (typed arrays, not an object a face); subject codes are kept up to date by each change and only the
 * templates of the subjects a change touched are recomputed, so the first search after a change costs what any search
 * costs.
 */
import { BLOCK_ROWS, DotKernel } from "./dot-kernel.ts";
import { GalleryIndex } from "./gallery-index.ts";

/** One face as the gallery holds it. */
export type StoredFace = FaceDetails & { faceId: string; subject: string; embedding: Float32Array };

export interface SubjectSummary {
  subject: string;
  faces: number;
}

export interface Match {
  subject: string;
  /** The subject's most similar face. */
  faceId: string;
  /** Cosine similarity (embeddings are L2-normalised) with the subject's template, or with its best face. */
  similarity: number;
}

/**
 * How a subject enrolled with several faces is scored: `template`, the similarity with the mean of its faces'
 * normalised embeddings (re-normalised); `best-face`, the similarity of its most similar face. With one face each they
 * agree. The template is the better on lfw-devtrain with three photos per person (model/README.md).
 */
export type SubjectScoring = "template" | "best-face";

/** Where an enrolled face came from, kept for the people who curate the gallery. */
export interface FaceDetails {
  /** ISO 8601. */
  createdAt: string;
  /** The uploaded file's name. */
  source: string;
}

const NO_DETAILS: FaceDetails = { createdAt: "", source: "" };

const MAGIC = 0x46464731; // "FFG1"
const FORMAT_VERSION = 1;

export class GalleryFormatError extends Error {
  override name = "GalleryFormatError";
}

export class Gallery {
  private readonly kernel: DotKernel;
  /** Row i of the index is row i of the matrix. */
  readonly names: GalleryIndex;
  private nextFace = 1;

  /**
   * `blockRows`: rows per kernel block (each its own wasm memory); smaller only to test searches across blocks.
   * `keepDetails` false: each face's createdAt and source are not kept (an app instance never shows them).
   */
  constructor(readonly dimensions: number, capacity = 64, blockRows = BLOCK_ROWS, keepDetails = true) {
    this.names = new GalleryIndex(keepDetails);
    if (!Number.isInteger(dimensions) || dimensions <= 0) throw new Error(`invalid embedding dimensions ${dimensions}`);
    this.kernel = new DotKernel(dimensions, capacity, blockRows);
    this.codes = {
      ofRow: new Int32Array(capacity),
      next: new Int32Array(capacity),
      count: 0,
      first: new Int32Array(),
      last: new Int32Array(),
      identity: new Int32Array(),
      subjectCode: new Int32Array(),
      best: { score: new Float32Array(), row: new Int32Array() },
    };
    this.templates = new DotKernel(dimensions, 1, blockRows);
    this.templateSum = new Float64Array(dimensions);
    this.template = new Float32Array(dimensions);
  }

  get size(): number {
    return this.names.size;
  }

  /** Makes room for `faces` faces at once (a load knows how many are coming), rather than growing as they come. */
  reserve(faces: number): void {
    this.kernel.reserve(faces);
    this.names.reserve(faces);
  }

  enroll(subject: string, embedding: Float32Array, details: FaceDetails = NO_DETAILS): string {
    const faceId = `f${this.nextFace}`;
    this.insert(faceId, subject, embedding, details);
    return faceId;
  }

  /**
   * Adds a face under an id its caller chose (`f` and a number: the store's sequence number), replacing the face of
   * that id if there is one.
   */
  insert(faceId: string, subject: string, embedding: Float32Array, details: FaceDetails = NO_DETAILS, segment?: string): void {
    this.checkDimensions(embedding);
    this.removeFace(faceId);
    this.kernel.reserve(this.size + 1);
    const row = this.names.insert(faceId, subject, details, segment);
    this.kernel.setRow(row, embedding);
    this.codeRow(row);
    const number = Number(faceId.slice(1));
    if (Number.isSafeInteger(number) && number >= this.nextFace) this.nextFace = number + 1;
  }

  /** Every face, in no particular order; each embedding a view of the matrix, valid until the next change. */
  *faces(): Generator<StoredFace> {
    for (let row = 0; row < this.size; row++) yield this.faceAt(row);
  }

  /** One face; its embedding a view of the matrix, valid until the next change. */
  face(faceId: string): StoredFace | undefined {
    const row = this.names.rowOfFace(faceId);
    return row === undefined ? undefined : this.faceAt(row);
  }

  private faceAt(row: number): StoredFace {
    return { faceId: this.names.faceIdAt(row), subject: this.names.subjectAt(row), embedding: this.kernel.row(row), ...this.names.detailsAt(row) };
  }

  hasFace(faceId: string): boolean {
    return this.names.hasFace(faceId);
  }

  subjectOf(faceId: string): string | undefined {
    return this.names.subjectOf(faceId);
  }

  /** How many faces `subject` has. */
  faceCount(subject: string): number {
    return this.names.faceCount(subject);
  }

  /** A subject's faces, oldest first. */
  facesOf(subject: string): (FaceDetails & { faceId: string })[] {
    return this.names.facesOf(subject);
  }

  /** Gives every face of `from` to `to` (merging when `to` has faces); returns how many moved. */
  renameSubject(from: string, to: string): number {
    const merged = from !== to && this.names.faceCount(to) > 0;
    const code = this.codeOf(from);
    const moved = this.names.renameSubject(from, to);
    if (from === to || code === undefined) return moved;
    if (merged) this.mergeSubject(code, this.codeOf(to)!);
    return moved;
  }

  /** The similarity of `embedding` to one subject, scored as `search` scores it; undefined when the subject has no face. */
  subjectSimilarity(subject: string, embedding: Float32Array, scoring: SubjectScoring = "template"): number | undefined {
    this.checkDimensions(embedding);
    const code = this.codeOf(subject);
    if (code === undefined) return undefined;
    const codes = this.subjectCodes();
    if (scoring === "template") return this.templateKernel().dot(embedding, code);
    return Math.max(...rowsOf(codes, code).map((face) => this.kernel.dot(embedding, face)));
  }

  removeFace(faceId: string): boolean {
    const row = this.names.rowOfFace(faceId);
    if (row === undefined) return false;
    this.removeRow(row);
    return true;
  }

  /** Returns how many faces were removed. */
  removeSubject(subject: string): number {
    const code = this.codeOf(subject);
    if (code === undefined) return 0;
    const faceIds = rowsOf(this.codes, code).map((row) => this.names.faceIdAt(row));
    for (const faceId of faceIds) this.removeFace(faceId);
    return faceIds.length;
  }

  /** How many distinct subjects are enrolled. */
  get subjectCount(): number {
    return this.names.subjectCount;
  }

  /** The subjects by name, `count` of them from the `offset`-th (all by default). */
  list(offset = 0, count = Infinity): SubjectSummary[] {
    return this.names.list(offset, count);
  }

  /** The k most similar subjects, each with its most similar face, most similar first. */
  search(embedding: Float32Array, k: number, scoring: SubjectScoring = "template"): Match[] {
    this.checkDimensions(embedding);
    return scoring === "template" ? this.searchTemplates(embedding, k) : this.searchBestFaces(embedding, k);
  }

  /**
   * The templates are rows of their own kernel (one per subject, recomputed for the subjects a change touched), searched
   * like faces; then each of the k subjects' faces is scored exactly to name its most similar one.
   */
  private searchTemplates(embedding: Float32Array, k: number): Match[] {
    const codes = this.subjectCodes();
    const templates = this.templateKernel();
    return bestRows(templates, codes.count, { ofRow: codes.identity, count: codes.count, best: codes.best }, embedding, k).map(({ score, code }) => {
      let row = -1;
      let best = -Infinity;
      for (let face = codes.first[code]!; face !== NONE; face = codes.next[face]!) {
        const similarity = this.kernel.dot(embedding, face);
        if (similarity > best) [best, row] = [similarity, face];
      }
      return { subject: this.names.subjectAt(row), faceId: this.names.faceIdAt(row), similarity: score };
    });
  }

  private searchBestFaces(embedding: Float32Array, k: number): Match[] {
    return bestRows(this.kernel, this.size, this.subjectCodes(), embedding, k).map(({ row, score }) => ({
      subject: this.names.subjectAt(row),
      faceId: this.names.faceIdAt(row),
      similarity: score,
    }));
  }

  /**
   * Each row's subject as a small integer, so the per-subject reduction needs no string hashing. Kept up to date by
   * every change: a subject's code is taken by the last code when the subject leaves, so codes stay dense.
   */
  private readonly codes: SubjectCodes;
  /** The `GalleryIndex`'s subject code -> this code (NONE: none), rather than a second map of the names. */
  private codeOfSubjectCode = new Int32Array(0);
  /** Row `code` = that subject's template: the normalised sum of its faces, recomputed for the subjects a change touched. */
  private readonly templates: DotKernel;
  private readonly staleTemplates = new Set<number>();
  /** The template being computed, reused from template to template. */
  private readonly templateSum: Float64Array;
  private readonly template: Float32Array;

  private codeOf(subject: string): number | undefined {
    const subjectCode = this.names.subjectCode(subject);
    return subjectCode === undefined ? undefined : this.codeOfSubjectCode[subjectCode];
  }

  private subjectCodes(): SubjectCodes {
    return this.codes;
  }

  private templateKernel(): DotKernel {
    const { templateSum: sum, template } = this;
    // Room for every subject's template at once, when they are made (a load makes hundreds of thousands).
    if (this.staleTemplates.size > 0) this.templates.reserve(this.codes.count);
    for (const code of this.staleTemplates) {
      sum.fill(0);
      for (let row = this.codes.first[code]!; row !== NONE; row = this.codes.next[row]!) {
        const values = this.kernel.row(row);
        for (let d = 0; d < values.length; d++) sum[d]! += values[d]!;
      }
      // Not Math.hypot(...sum): the spread made an array per subject, gigabytes of garbage at millions of subjects.
      const norm = (Reflect.apply(Math.hypot, undefined, sum) as number) || 1;
      for (let d = 0; d < template.length; d++) template[d] = sum[d]! / norm;
      this.templates.setRow(code, template);
    }
    this.staleTemplates.clear();
    return this.templates;
  }

  /** Gives row `row` (just added) its subject's code, making one for a new subject. */
  private codeRow(row: number): void {
    const codes = this.codes;
    if (row >= codes.ofRow.length) {
      const room = Math.max(16, codes.ofRow.length * 2);
      codes.ofRow = grownTo(codes.ofRow, room);
      codes.next = grownTo(codes.next, room);
    }
    const subjectCode = this.names.subjectCodeAt(row);
    if (subjectCode >= this.codeOfSubjectCode.length) {
      const grown = new Int32Array(Math.max(16, 2 * this.codeOfSubjectCode.length, subjectCode + 1)).fill(NONE);
      grown.set(this.codeOfSubjectCode);
      this.codeOfSubjectCode = grown;
    }
    let code = this.codeOfSubjectCode[subjectCode]!;
    if (code === NONE) {
      code = codes.count++;
      this.codeOfSubjectCode[subjectCode] = code;
      if (code >= codes.identity.length) growPerCode(codes);
      codes.subjectCode[code] = subjectCode;
      codes.first[code] = NONE;
    }
    codes.ofRow[row] = code;
    appendRow(codes, code, row);
    this.staleTemplates.add(code);
  }

  /** Row `row` leaves; row `last` (if another) moves into its place, as the kernel's rows just did. */
  private uncodeRow(row: number, last: number): void {
    const codes = this.codes;
    const code = codes.ofRow[row]!;
    unlinkRow(codes, code, row);
    if (row !== last) {
      relinkRow(codes, codes.ofRow[last]!, last, row);
      codes.ofRow[row] = codes.ofRow[last]!;
    }
    if (codes.first[code] === NONE) this.freeCode(code);
    else this.staleTemplates.add(code);
  }

  /** After the faces of `code` became those of `into` (a rename keeps the subject's code: the index's follows the name). */
  private mergeSubject(code: number, into: number): void {
    for (const row of rowsOf(this.codes, code)) {
      this.codes.ofRow[row] = into;
      appendRow(this.codes, into, row);
    }
    this.codes.first[code] = NONE;
    this.staleTemplates.add(into);
    this.freeCode(code);
  }

  /** A subject with no face left gives its code to the last code (and that code's template row and rows). */
  private freeCode(code: number): void {
    const codes = this.codes;
    const last = --codes.count;
    this.codeOfSubjectCode[codes.subjectCode[code]!] = NONE;
    this.staleTemplates.delete(code);
    if (code !== last) {
      codes.first[code] = codes.first[last]!;
      codes.last[code] = codes.last[last]!;
      codes.subjectCode[code] = codes.subjectCode[last]!;
      for (const row of rowsOf(codes, code)) codes.ofRow[row] = code;
      this.codeOfSubjectCode[codes.subjectCode[code]!] = code;
      // Made again when next searched: the last template's row may not be made yet.
      this.staleTemplates.delete(last);
      this.staleTemplates.add(code);
    }
  }

  serialize(): Uint8Array {
    return Gallery.serializeFaces(this.dimensions, [...this.faces()], this.nextFace);
  }

  /** Faces as `serialize` writes a gallery of them, without making one. */
  static serializeFaces(dimensions: number, faces: readonly StoredFace[], nextFace = 1 + faces.reduce((highest, { faceId }) => Math.max(highest, Number(faceId.slice(1)) || 0), 0)): Uint8Array {
    const labels = new TextEncoder().encode(
      JSON.stringify({
        faceIds: faces.map(({ faceId }) => faceId),
        subjects: faces.map(({ subject }) => subject),
        details: faces.map(({ createdAt, source }) => ({ createdAt, source })),
        nextFace,
      }),
    );
    const header = 16;
    const matrixBytes = faces.length * dimensions * 4;
    const bytes = new Uint8Array(header + matrixBytes + labels.byteLength);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, MAGIC);
    view.setUint32(4, FORMAT_VERSION);
    view.setUint32(8, dimensions);
    view.setUint32(12, faces.length);
    const packed = new Float32Array(bytes.buffer, header, faces.length * dimensions);
    faces.forEach((face, row) => {
      if (face.embedding.length !== dimensions) throw new Error(`embedding has ${face.embedding.length} dimensions; this gallery holds ${dimensions}`);
      packed.set(face.embedding, row * dimensions);
    });
    bytes.set(labels, header + matrixBytes);
    return bytes;
  }

  static deserialize(bytes: Uint8Array): Gallery {
    const stored = Gallery.read(bytes);
    const gallery = new Gallery(stored.dimensions, Math.max(stored.faces.length, 1));
    for (const face of stored.faces) gallery.insert(face.faceId, face.subject, face.embedding, { createdAt: face.createdAt, source: face.source });
    gallery.nextFace = Math.max(gallery.nextFace, stored.nextFace);
    return gallery;
  }

  /**
   * The faces of serialized bytes, each embedding a view of the bytes' matrix (of a copy when the bytes are not
   * aligned for float32): for merging into another gallery.
   */
  static read(bytes: Uint8Array): { dimensions: number; nextFace: number; faces: StoredFace[] } {
    const { dimensions, size, nextFace, faces } = Gallery.readLabels(bytes);
    const start = bytes.byteOffset + 16;
    const packed = start % 4 === 0 ? new Float32Array(bytes.buffer, start, size * dimensions) : new Float32Array(bytes.slice(16, 16 + size * dimensions * 4).buffer);
    return { dimensions, nextFace, faces: faces.map((face, row) => ({ ...face, embedding: packed.subarray(row * dimensions, (row + 1) * dimensions) })) };
  }

  /** The faces of serialized bytes without their embeddings: what a view of the names needs. */
  static readLabels(bytes: Uint8Array): { dimensions: number; size: number; nextFace: number; faces: (FaceDetails & { faceId: string; subject: string })[] } {
    if (bytes.byteLength < 16) throw new GalleryFormatError("gallery data is too short");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(0) !== MAGIC) throw new GalleryFormatError("not a facefleet gallery");
    const version = view.getUint32(4);
    if (version !== FORMAT_VERSION) throw new GalleryFormatError(`gallery format ${version} is not supported (expected ${FORMAT_VERSION})`);
    const dimensions = view.getUint32(8);
    const size = view.getUint32(12);
    const matrixBytes = size * dimensions * 4;
    if (dimensions === 0 || bytes.byteLength < 16 + matrixBytes) throw new GalleryFormatError("gallery data is truncated");
    let labels: { faceIds: string[]; subjects: string[]; details?: FaceDetails[]; nextFace: number };
    try {
      labels = JSON.parse(new TextDecoder().decode(bytes.subarray(16 + matrixBytes)));
    } catch {
      throw new GalleryFormatError("gallery labels are damaged");
    }
    if (labels.faceIds?.length !== size || labels.subjects?.length !== size) throw new GalleryFormatError("gallery labels do not match its embeddings");
    // Galleries saved before faces had details still load.
    const details = labels.details?.length === size ? labels.details : undefined;
    const faces = labels.faceIds.map((faceId, row) => ({ faceId, subject: labels.subjects[row]!, ...(details?.[row] ?? NO_DETAILS) }));
    return { dimensions, size, nextFace: labels.nextFace, faces };
  }

  private removeRow(row: number): void {
    const last = this.size - 1;
    this.names.removeRow(row);
    if (row !== last) this.kernel.copyRow(last, row);
    this.uncodeRow(row, last);
  }

  private checkDimensions(embedding: Float32Array): void {
    if (embedding.length !== this.dimensions) {
      throw new Error(`embedding has ${embedding.length} dimensions; this gallery holds ${this.dimensions}`);
    }
  }
}

interface SubjectCodes {
  ofRow: Int32Array;
  /**
   * Each subject's rows, a list through the rows in the order they came: its first and last row (by code), each row's
   * next (NONE: the last). Typed arrays, not an array a subject: hundreds of thousands of those cost tens of megabytes.
   */
  next: Int32Array;
  first: Int32Array;
  last: Int32Array;
  count: number;
  /**
   * code -> code: the templates' rows are the subjects. This and `best` have room for at least `count` codes (and keep
   * it when codes are freed: entries past `count` are the same as fresh ones).
   */
  identity: Int32Array;
  /** code -> the subject's code in the `GalleryIndex` (whose codes are not dense). */
  subjectCode: Int32Array;
  /** Each subject's best exact score (-Infinity between searches) and row, reused by every search. */
  best: { score: Float32Array; row: Int32Array };
}

/** Doubles the room of the per-code arrays: identity as ever, best scores at -Infinity as between searches. */
function growPerCode(codes: SubjectCodes): void {
  const room = Math.max(16, codes.identity.length * 2);
  const identity = new Int32Array(room);
  for (let code = 0; code < room; code++) identity[code] = code;
  codes.identity = identity;
  codes.best = { score: new Float32Array(room).fill(-Infinity), row: new Int32Array(room) };
  codes.first = grownTo(codes.first, room);
  codes.last = grownTo(codes.last, room);
  codes.subjectCode = grownTo(codes.subjectCode, room);
}

const NONE = -1;

function grownTo(array: Int32Array, room: number): Int32Array {
  const grown = new Int32Array(room);
  grown.set(array);
  return grown;
}

/** A subject's rows, in the order they came. */
function rowsOf(codes: SubjectCodes, code: number): number[] {
  const rows: number[] = [];
  for (let row = codes.first[code]!; row !== NONE; row = codes.next[row]!) rows.push(row);
  return rows;
}

function appendRow(codes: SubjectCodes, code: number, row: number): void {
  codes.next[row] = NONE;
  if (codes.first[code] === NONE) codes.first[code] = row;
  else codes.next[codes.last[code]!] = row;
  codes.last[code] = row;
}

/** The row before `row` in its subject's list; NONE when it is the first. */
function previousRow(codes: SubjectCodes, code: number, row: number): number {
  let previous = NONE;
  for (let at = codes.first[code]!; at !== row; at = codes.next[at]!) previous = at;
  return previous;
}

function unlinkRow(codes: SubjectCodes, code: number, row: number): void {
  const previous = previousRow(codes, code, row);
  const next = codes.next[row]!;
  if (previous === NONE) codes.first[code] = next;
  else codes.next[previous] = next;
  if (codes.last[code] === row) codes.last[code] = previous;
}

/** Row `from` of a subject moves to row `to`, keeping its place in the subject's list. */
function relinkRow(codes: SubjectCodes, code: number, from: number, to: number): void {
  const previous = previousRow(codes, code, from);
  if (previous === NONE) codes.first[code] = to;
  else codes.next[previous] = to;
  codes.next[to] = codes.next[from]!;
  if (codes.last[code] === from) codes.last[code] = to;
}

/**
 * The k best subjects by their best row (codes.ofRow maps rows to subjects), most similar first, exactly as an exact
 * float32 pass over every row would rank them (ties to the lower subject code, then the lower row).
 *
 * A coarse int8 pass scores every row within `error` of its exact score. Let c be the k-th best subject's coarse score:
 * those k subjects score at least c - error exactly, so the exact k-th best is at least c - error, and a row that can
 * reach it (ties included) scores at least c - 2 error coarsely. Only those candidates are scored exactly; every subject
 * of the exact top k has its best row among them, and any other subject's partial best is no higher than its true one.
 */
function bestRows(kernel: DotKernel, size: number, codes: Pick<SubjectCodes, "ofRow" | "count" | "best">, embedding: Float32Array, k: number): { code: number; row: number; score: number }[] {
  const coarse = kernel.coarseScores(embedding, size);
  const threshold = kthSubjectScore(coarse.blocks, kernel.blockRows, codes, k) - 2 * coarse.error;

  const { score: bestScore, row: bestRow } = codes.best;
  const touched: number[] = [];
  const consider = (row: number, score: number) => {
    const code = codes.ofRow[row]!;
    if (score > bestScore[code]!) {
      if (bestScore[code] === -Infinity) touched.push(code);
      bestScore[code] = score;
      bestRow[code] = row;
    }
  };
  try {
    considerCandidates(kernel, coarse.blocks, threshold, embedding, consider);
    // In subject order, so that ties go to the lower code as in a pass over every subject.
    const order = Int32Array.from(touched).sort();
    const top = topK(Float32Array.from(order, (code) => bestScore[code]!), k);
    return top.map((i) => ({ code: order[i]!, row: bestRow[order[i]!]!, score: bestScore[order[i]!]! }));
  } finally {
    for (const code of touched) bestScore[code] = -Infinity;
  }
}

/** Scores exactly every row whose int8 score reaches `threshold`, or every row of a block where those are too many. */
function considerCandidates(kernel: DotKernel, blocks: Float32Array[], threshold: number, embedding: Float32Array, consider: (row: number, score: number) => void): void {
  blocks.forEach((scores, block) => {
    const first = block * kernel.blockRows;
    if (candidateRows.length < Math.ceil(scores.length / EXACT_PASS_ABOVE)) candidateRows = new Int32Array(Math.ceil(kernel.blockRows / EXACT_PASS_ABOVE));
    const candidates = candidateRows.subarray(0, Math.ceil(scores.length / EXACT_PASS_ABOVE));
    let count = 0;
    for (let at = 0; at < scores.length && count <= candidates.length; at++) if (scores[at]! >= threshold) candidates[count++] = at;
    if (count > candidates.length) {
      const exact = kernel.blockScores(embedding, block, scores.length);
      for (let at = 0; at < exact.length; at++) consider(first + at, exact[at]!);
      return;
    }
    const exact = kernel.blockDots(embedding, block, candidates.subarray(0, count));
    for (let i = 0; i < count; i++) consider(first + candidates[i]!, exact[i]!);
  });
}

/** The candidates' row numbers, reused from query to query (a search runs start to end, never two at once). */
let candidateRows = new Int32Array();

/** Above a block's rows / this many candidates, one exact pass over the block beats scoring candidates one by one. */
const EXACT_PASS_ABOVE = 16;

/**
 * The k-th best subject's score, each subject scored by its best row; -Infinity when there are fewer than k subjects.
 * Walking rows from the best down, a subject's first row is its best, so the answer is the row where the k-th distinct
 * subject appears: the best few rows are kept in one pass (a comparison per row), and more only when they hold fewer
 * than k subjects.
 */
function kthSubjectScore(blocks: Float32Array[], blockRows: number, codes: Pick<SubjectCodes, "ofRow" | "count">, k: number): number {
  const rows = blocks.reduce((sum, scores) => sum + scores.length, 0);
  if (!(k >= 1) || codes.count < k) return -Infinity;
  for (let kept = Math.max(4 * k, 32); kept <= KEPT_AT_MOST && kept < 2 * rows; kept *= 2) {
    const seen = new Set<number>();
    for (const { row, score } of bestOf(blocks, blockRows, kept)) {
      seen.add(codes.ofRow[row]!);
      if (seen.size === k) return score;
    }
  }
  // A few subjects own the best rows: one pass keeping each subject's best.
  const best = new Float32Array(codes.count).fill(-Infinity);
  blocks.forEach((scores, b) => {
    for (let at = 0; at < scores.length; at++) {
      const code = codes.ofRow[b * blockRows + at]!;
      if (scores[at]! > best[code]!) best[code] = scores[at]!;
    }
  });
  const top = topK(best, k);
  return top.length < k ? -Infinity : best[top[k - 1]!]!;
}

/** Kept best rows beyond which the per-subject pass is the cheaper (keeping is a sorted insertion). */
const KEPT_AT_MOST = 1024;

/** The `count` best rows over all blocks, best first. */
function bestOf(blocks: Float32Array[], blockRows: number, count: number): { row: number; score: number }[] {
  const scores = new Float32Array(count).fill(-Infinity);
  const rows = new Int32Array(count).fill(-1);
  blocks.forEach((block, b) => {
    for (let at = 0; at < block.length; at++) {
      const score = block[at]!;
      if (score <= scores[count - 1]!) continue;
      let i = count - 1;
      while (i > 0 && scores[i - 1]! < score) {
        scores[i] = scores[i - 1]!;
        rows[i] = rows[i - 1]!;
        i--;
      }
      scores[i] = score;
      rows[i] = b * blockRows + at;
    }
  });
  const out: { row: number; score: number }[] = [];
  for (let i = 0; i < count && rows[i]! >= 0; i++) out.push({ row: rows[i]!, score: scores[i]! });
  return out;
}

/** Indices of the k largest values, largest first: one pass keeping a small sorted list, as k is small. */
function topK(values: Float32Array, k: number): number[] {
  const top: number[] = [];
  if (!(k >= 1)) return top;
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    if (value === -Infinity) continue;
    if (top.length === k && value <= values[top[k - 1]!]!) continue;
    let at = top.length === k ? k - 1 : top.length;
    while (at > 0 && values[top[at - 1]!]! < value) {
      top[at] = top[at - 1]!;
      at--;
    }
    top[at] = i;
  }
  return top;
}
