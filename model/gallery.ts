/**
 * The gallery of enrolled faces: pure and storage-free. Embeddings live in one contiguous Float32 matrix
 * (row i = face i) with an int8 shadow, searched by brute force with WebAssembly SIMD kernels; removal swaps the last
 * row into the hole. A face-id index and a per-subject index make removing a face or listing a subject's faces
 * independent of the gallery's size; the subjects are kept sorted as they come and go, so listing never sorts; subject
 * codes are kept up to date by each change and only the templates of the subjects a change touched are recomputed.
 */
import { DotKernel } from "./dot-kernel.ts";

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
  private faceIds: string[] = [];
  private subjects: string[] = [];
  private details: FaceDetails[] = [];
  private nextFace = 1;
  private readonly rowOfFace = new Map<string, number>();
  private readonly facesOfSubject = new Map<string, Set<string>>();
  /** Every subject with a face, in listing order. */
  private readonly sortedSubjects: string[] = [];

  constructor(readonly dimensions: number, capacity = 64) {
    if (!Number.isInteger(dimensions) || dimensions <= 0) throw new Error(`invalid embedding dimensions ${dimensions}`);
    this.kernel = new DotKernel(dimensions, capacity);
    this.codes = { ofRow: new Int32Array(capacity), count: 0, rowsOf: [] };
    this.templates = new DotKernel(dimensions, 1);
  }

  get size(): number {
    return this.faceIds.length;
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
  insert(faceId: string, subject: string, embedding: Float32Array, details: FaceDetails = NO_DETAILS): void {
    this.checkDimensions(embedding);
    this.removeFace(faceId);
    this.kernel.reserve(this.size + 1);
    const row = this.size;
    this.kernel.setRow(row, embedding);
    this.faceIds.push(faceId);
    this.subjects.push(subject);
    this.details.push(details);
    this.rowOfFace.set(faceId, row);
    this.addToSubject(subject, faceId);
    this.codeRow(row, subject);
    const number = Number(faceId.slice(1));
    if (Number.isSafeInteger(number) && number >= this.nextFace) this.nextFace = number + 1;
  }

  /** Every face, in no particular order; each embedding a view of the matrix, valid until the next change. */
  *faces(): Generator<StoredFace> {
    for (const faceId of this.faceIds) yield this.face(faceId)!;
  }

  /** One face; its embedding a view of the matrix, valid until the next change. */
  face(faceId: string): StoredFace | undefined {
    const row = this.rowOfFace.get(faceId);
    return row === undefined ? undefined : { faceId, subject: this.subjects[row]!, embedding: this.kernel.row(row), ...this.details[row]! };
  }

  hasFace(faceId: string): boolean {
    return this.rowOfFace.has(faceId);
  }

  subjectOf(faceId: string): string | undefined {
    const row = this.rowOfFace.get(faceId);
    return row === undefined ? undefined : this.subjects[row];
  }

  /** How many faces `subject` has. */
  faceCount(subject: string): number {
    return this.facesOfSubject.get(subject)?.size ?? 0;
  }

  /** A subject's faces, oldest first. */
  facesOf(subject: string): (FaceDetails & { faceId: string })[] {
    const faces = [...(this.facesOfSubject.get(subject) ?? [])].map((faceId) => ({ faceId, ...this.details[this.rowOfFace.get(faceId)!]! }));
    return faces.sort((a, b) => Number(a.faceId.slice(1)) - Number(b.faceId.slice(1)));
  }

  /** Gives every face of `from` to `to` (merging when `to` has faces); returns how many moved. */
  renameSubject(from: string, to: string): number {
    const moved = [...(this.facesOfSubject.get(from) ?? [])];
    if (from === to || moved.length === 0) return moved.length;
    const merged = this.facesOfSubject.has(to);
    for (const faceId of moved) {
      this.subjects[this.rowOfFace.get(faceId)!] = to;
      this.removeFromSubject(from, faceId);
      this.addToSubject(to, faceId);
    }
    this.recodeSubject(from, to, merged);
    return moved.length;
  }

  /** The similarity of `embedding` to one subject, scored as `search` scores it; undefined when the subject has no face. */
  subjectSimilarity(subject: string, embedding: Float32Array, scoring: SubjectScoring = "template"): number | undefined {
    this.checkDimensions(embedding);
    const [faceId] = this.facesOfSubject.get(subject) ?? [];
    if (faceId === undefined) return undefined;
    const row = this.rowOfFace.get(faceId)!;
    const codes = this.subjectCodes();
    const code = codes.ofRow[row]!;
    if (scoring === "template") return this.templateKernel().dot(embedding, code);
    return Math.max(...codes.rowsOf[code]!.map((face) => this.kernel.dot(embedding, face)));
  }

  removeFace(faceId: string): boolean {
    const row = this.rowOfFace.get(faceId);
    if (row === undefined) return false;
    this.removeRow(row);
    return true;
  }

  /** Returns how many faces were removed. */
  removeSubject(subject: string): number {
    const faces = [...(this.facesOfSubject.get(subject) ?? [])];
    for (const faceId of faces) this.removeFace(faceId);
    return faces.length;
  }

  /** How many distinct subjects are enrolled. */
  get subjectCount(): number {
    return this.sortedSubjects.length;
  }

  /** The subjects by name, `count` of them from the `offset`-th (all by default); no sorting. */
  list(offset = 0, count = Infinity): SubjectSummary[] {
    return this.sortedSubjects.slice(offset, offset + count).map((subject) => ({ subject, faces: this.faceCount(subject) }));
  }

  private addToSubject(subject: string, faceId: string): void {
    let faces = this.facesOfSubject.get(subject);
    if (!faces) {
      this.facesOfSubject.set(subject, (faces = new Set()));
      this.sortedSubjects.splice(this.sortedPosition(subject), 0, subject);
    }
    faces.add(faceId);
  }

  private removeFromSubject(subject: string, faceId: string): void {
    const faces = this.facesOfSubject.get(subject);
    if (!faces?.delete(faceId) || faces.size > 0) return;
    this.facesOfSubject.delete(subject);
    this.sortedSubjects.splice(this.sortedPosition(subject), 1);
  }

  /** Where `subject` is, or would go, in the sorted list: a binary search. */
  private sortedPosition(subject: string): number {
    let low = 0;
    let high = this.sortedSubjects.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.sortedSubjects[middle]!.localeCompare(subject) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The k most similar subjects, each with its most similar face, most similar first. */
  search(embedding: Float32Array, k: number, scoring: SubjectScoring = "template"): Match[] {
    this.checkDimensions(embedding);
    return scoring === "template" ? this.searchTemplates(embedding, k) : this.searchBestFaces(embedding, k);
  }

  /**
   * The templates are rows of their own kernel (one per subject, recomputed for the subjects a change touched), searched like faces; then each
   * of the k subjects' faces is scored exactly to name its most similar one.
   */
  private searchTemplates(embedding: Float32Array, k: number): Match[] {
    const codes = this.subjectCodes();
    const templates = this.templateKernel();
    const identity = { ofRow: Int32Array.from({ length: codes.count }, (_, code) => code), count: codes.count };
    return bestRows(templates, codes.count, identity, embedding, k).map(({ score, code }) => {
      let row = -1;
      let best = -Infinity;
      for (const face of codes.rowsOf[code]!) {
        const similarity = this.kernel.dot(embedding, face);
        if (similarity > best) [best, row] = [similarity, face];
      }
      return { subject: this.subjects[row]!, faceId: this.faceIds[row]!, similarity: score };
    });
  }

  private searchBestFaces(embedding: Float32Array, k: number): Match[] {
    return bestRows(this.kernel, this.size, this.subjectCodes(), embedding, k).map(({ row, score }) => ({
      subject: this.subjects[row]!,
      faceId: this.faceIds[row]!,
      similarity: score,
    }));
  }

  /**
   * Each row's subject as a small integer, so the per-subject reduction needs no string hashing. Kept up to date by
   * every change: a subject's code is taken by the last code when the subject leaves, so codes stay dense.
   */
  private readonly codes: SubjectCodes;
  private readonly codeOf = new Map<string, number>();
  private readonly subjectOfCode: string[] = [];
  /** Row `code` = that subject's template: the normalised sum of its faces, recomputed for the subjects a change touched. */
  private readonly templates: DotKernel;
  private readonly staleTemplates = new Set<number>();

  private subjectCodes(): SubjectCodes {
    return this.codes;
  }

  private templateKernel(): DotKernel {
    const sum = new Float64Array(this.dimensions);
    for (const code of this.staleTemplates) {
      sum.fill(0);
      for (const row of this.codes.rowsOf[code]!) this.kernel.row(row).forEach((value, d) => (sum[d]! += value));
      const norm = Math.hypot(...sum) || 1;
      this.templates.setRow(code, Float32Array.from(sum, (value) => value / norm));
    }
    this.staleTemplates.clear();
    return this.templates;
  }

  /** Gives row `row` (just added) its subject's code, making one for a new subject. */
  private codeRow(row: number, subject: string): void {
    const codes = this.codes;
    if (row >= codes.ofRow.length) {
      const grown = new Int32Array(Math.max(16, codes.ofRow.length * 2));
      grown.set(codes.ofRow);
      codes.ofRow = grown;
    }
    let code = this.codeOf.get(subject);
    if (code === undefined) {
      code = codes.count++;
      this.codeOf.set(subject, code);
      this.subjectOfCode.push(subject);
      codes.rowsOf.push([]);
      this.templates.reserve(codes.count);
    }
    codes.ofRow[row] = code;
    codes.rowsOf[code]!.push(row);
    this.staleTemplates.add(code);
  }

  /** Row `row` leaves; row `last` (if another) moves into its place, as the kernel's rows just did. */
  private uncodeRow(row: number, last: number): void {
    const codes = this.codes;
    const code = codes.ofRow[row]!;
    const rows = codes.rowsOf[code]!;
    rows.splice(rows.indexOf(row), 1);
    if (row !== last) {
      const moved = codes.rowsOf[codes.ofRow[last]!]!;
      moved[moved.indexOf(last)] = row;
      codes.ofRow[row] = codes.ofRow[last]!;
    }
    if (rows.length === 0) this.freeCode(code);
    else this.staleTemplates.add(code);
  }

  /** After `from`'s faces became `to`'s: the code follows the name, or, into an existing subject, its rows do. */
  private recodeSubject(from: string, to: string, merged: boolean): void {
    const code = this.codeOf.get(from)!;
    if (!merged) {
      this.codeOf.delete(from);
      this.codeOf.set(to, code);
      this.subjectOfCode[code] = to;
      return;
    }
    const into = this.codeOf.get(to)!;
    for (const row of this.codes.rowsOf[code]!) {
      this.codes.ofRow[row] = into;
      this.codes.rowsOf[into]!.push(row);
    }
    this.codes.rowsOf[code] = [];
    this.staleTemplates.add(into);
    this.freeCode(code);
  }

  /** A subject with no face left gives its code to the last code (and that code's template row and rows). */
  private freeCode(code: number): void {
    const codes = this.codes;
    const last = --codes.count;
    this.codeOf.delete(this.subjectOfCode[code]!);
    this.staleTemplates.delete(code);
    if (code !== last) {
      const lastSubject = this.subjectOfCode[last]!;
      codes.rowsOf[code] = codes.rowsOf[last]!;
      for (const row of codes.rowsOf[code]!) codes.ofRow[row] = code;
      this.codeOf.set(lastSubject, code);
      this.subjectOfCode[code] = lastSubject;
      this.templates.copyRow(last, code);
      if (this.staleTemplates.delete(last)) this.staleTemplates.add(code);
    }
    codes.rowsOf.pop();
    this.subjectOfCode.pop();
  }

  serialize(): Uint8Array {
    const encoder = new TextEncoder();
    const labels = encoder.encode(JSON.stringify({ faceIds: this.faceIds, subjects: this.subjects, details: this.details, nextFace: this.nextFace }));
    const header = 16;
    const matrixBytes = this.size * this.dimensions * 4;
    const bytes = new Uint8Array(header + matrixBytes + labels.byteLength);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, MAGIC);
    view.setUint32(4, FORMAT_VERSION);
    view.setUint32(8, this.dimensions);
    view.setUint32(12, this.size);
    const packed = new Float32Array(bytes.buffer, header, this.size * this.dimensions);
    for (let row = 0; row < this.size; row++) packed.set(this.kernel.row(row), row * this.dimensions);
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

  /** The faces of serialized bytes, each embedding a view of one copy of the matrix: for merging into another gallery. */
  static read(bytes: Uint8Array): { dimensions: number; nextFace: number; faces: StoredFace[] } {
    if (bytes.byteLength < 16) throw new GalleryFormatError("gallery data is too short");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(0) !== MAGIC) throw new GalleryFormatError("not a facefleet gallery");
    const version = view.getUint32(4);
    if (version !== FORMAT_VERSION) throw new GalleryFormatError(`gallery format ${version} is not supported (expected ${FORMAT_VERSION})`);
    const dimensions = view.getUint32(8);
    const size = view.getUint32(12);
    const matrixBytes = size * dimensions * 4;
    if (dimensions === 0 || bytes.byteLength < 16 + matrixBytes) throw new GalleryFormatError("gallery data is truncated");
    const packed = new Float32Array(bytes.slice(16, 16 + matrixBytes).buffer);
    let labels: { faceIds: string[]; subjects: string[]; details?: FaceDetails[]; nextFace: number };
    try {
      labels = JSON.parse(new TextDecoder().decode(bytes.subarray(16 + matrixBytes)));
    } catch {
      throw new GalleryFormatError("gallery labels are damaged");
    }
    if (labels.faceIds?.length !== size || labels.subjects?.length !== size) throw new GalleryFormatError("gallery labels do not match its embeddings");
    // Galleries saved before faces had details still load.
    const details = labels.details?.length === size ? labels.details : undefined;
    const faces = labels.faceIds.map((faceId, row) => ({
      faceId,
      subject: labels.subjects[row]!,
      embedding: packed.subarray(row * dimensions, (row + 1) * dimensions),
      ...(details?.[row] ?? NO_DETAILS),
    }));
    return { dimensions, nextFace: labels.nextFace, faces };
  }

  private removeRow(row: number): void {
    const last = this.size - 1;
    this.rowOfFace.delete(this.faceIds[row]!);
    this.removeFromSubject(this.subjects[row]!, this.faceIds[row]!);
    if (row !== last) {
      this.kernel.copyRow(last, row);
      this.faceIds[row] = this.faceIds[last]!;
      this.subjects[row] = this.subjects[last]!;
      this.details[row] = this.details[last]!;
      this.rowOfFace.set(this.faceIds[row]!, row);
    }
    this.uncodeRow(row, last);
    this.faceIds.pop();
    this.subjects.pop();
    this.details.pop();
  }

  private checkDimensions(embedding: Float32Array): void {
    if (embedding.length !== this.dimensions) {
      throw new Error(`embedding has ${embedding.length} dimensions; this gallery holds ${this.dimensions}`);
    }
  }
}

interface SubjectCodes {
  ofRow: Int32Array;
  count: number;
  /** Per subject, its rows. */
  rowsOf: number[][];
}

/**
 * The k best subjects by their best row (codes.ofRow maps rows to subjects), most similar first. A coarse int8 pass
 * bounds every score; only rows that could still reach the top k are scored exactly, so the answer is the exact one.
 */
function bestRows(kernel: DotKernel, size: number, codes: Pick<SubjectCodes, "ofRow" | "count">, embedding: Float32Array, k: number): { code: number; row: number; score: number }[] {
  const coarse = kernel.coarseScores(embedding, size);
  const threshold = kthValue(bestPerSubject(coarse.scores, codes), k) - 2 * coarse.error;
  let candidates = 0;
  for (let row = 0; row < size; row++) if (coarse.scores[row]! >= threshold) candidates++;

  const bestScore = new Float32Array(codes.count).fill(-Infinity);
  const bestRow = new Int32Array(codes.count);
  const consider = (row: number, score: number) => {
    const code = codes.ofRow[row]!;
    if (score > bestScore[code]!) {
      bestScore[code] = score;
      bestRow[code] = row;
    }
  };
  if (candidates > size / EXACT_PASS_ABOVE) {
    const scores = kernel.scores(embedding, size);
    for (let row = 0; row < size; row++) consider(row, scores[row]!);
  } else {
    for (let row = 0; row < size; row++) if (coarse.scores[row]! >= threshold) consider(row, kernel.dot(embedding, row));
  }
  return topK(bestScore, k).map((code) => ({ code, row: bestRow[code]!, score: bestScore[code]! }));
}

/** Above size / this many candidates, one exact pass over every face beats scoring candidates one by one. */
const EXACT_PASS_ABOVE = 16;

function bestPerSubject(scores: Float32Array, codes: Pick<SubjectCodes, "ofRow" | "count">): Float32Array {
  const best = new Float32Array(codes.count).fill(-Infinity);
  for (let row = 0; row < scores.length; row++) {
    const code = codes.ofRow[row]!;
    if (scores[row]! > best[code]!) best[code] = scores[row]!;
  }
  return best;
}

/** The k-th largest value; -Infinity when there are fewer than k. */
function kthValue(values: Float32Array, k: number): number {
  const top = topK(values, k);
  return top.length < k ? -Infinity : values[top[top.length - 1]!]!;
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
