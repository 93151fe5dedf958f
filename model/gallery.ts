/**
 * The gallery of enrolled faces: pure and storage-free. Embeddings live in one contiguous Float32 matrix
 * (row i = face i) with an int8 shadow, searched by brute force with WebAssembly SIMD kernels; removal swaps the last
 * row into the hole.
 */
import { DotKernel } from "./dot-kernel.ts";

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

const MAGIC = 0x46464731; // "FFG1"
const FORMAT_VERSION = 1;

export class GalleryFormatError extends Error {
  override name = "GalleryFormatError";
}

export class Gallery {
  private readonly kernel: DotKernel;
  private faceIds: string[] = [];
  private subjects: string[] = [];
  private nextFace = 1;

  constructor(readonly dimensions: number, capacity = 64) {
    if (!Number.isInteger(dimensions) || dimensions <= 0) throw new Error(`invalid embedding dimensions ${dimensions}`);
    this.kernel = new DotKernel(dimensions, capacity);
  }

  get size(): number {
    return this.faceIds.length;
  }

  enroll(subject: string, embedding: Float32Array): string {
    this.checkDimensions(embedding);
    this.kernel.reserve(this.size + 1);
    this.codes = undefined;
    const faceId = `f${this.nextFace++}`;
    this.kernel.setRow(this.size, embedding);
    this.faceIds.push(faceId);
    this.subjects.push(subject);
    return faceId;
  }

  removeFace(faceId: string): boolean {
    const row = this.faceIds.indexOf(faceId);
    if (row < 0) return false;
    this.removeRow(row);
    return true;
  }

  /** Returns how many faces were removed. */
  removeSubject(subject: string): number {
    let removed = 0;
    for (let row = this.size - 1; row >= 0; row--) {
      if (this.subjects[row] !== subject) continue;
      this.removeRow(row);
      removed++;
    }
    return removed;
  }

  /** How many distinct subjects are enrolled. */
  get subjectCount(): number {
    return this.subjectCodes().count;
  }

  list(): SubjectSummary[] {
    const counts = new Map<string, number>();
    for (const subject of this.subjects) counts.set(subject, (counts.get(subject) ?? 0) + 1);
    return [...counts].map(([subject, faces]) => ({ subject, faces })).sort((a, b) => a.subject.localeCompare(b.subject));
  }

  /** The k most similar subjects, each with its most similar face, most similar first. */
  search(embedding: Float32Array, k: number, scoring: SubjectScoring = "template"): Match[] {
    this.checkDimensions(embedding);
    return scoring === "template" ? this.searchTemplates(embedding, k) : this.searchBestFaces(embedding, k);
  }

  /**
   * A template's similarity is the sum of its faces' similarities over the norm of their sum. The int8 pass bounds every
   * template's score (each face's error adds up); only subjects that could still reach the top k are scored exactly.
   */
  private searchTemplates(embedding: Float32Array, k: number): Match[] {
    const codes = this.subjectCodes();
    const coarse = this.kernel.coarseScores(embedding, this.size);
    const coarseSums = new Float32Array(codes.count);
    for (let row = 0; row < this.size; row++) coarseSums[codes.ofRow[row]!]! += coarse.scores[row]!;
    const margin = (code: number) => (codes.faces[code]! * coarse.error) / codes.templateNorm[code]!;
    const lower = coarseSums.map((sum, code) => sum / codes.templateNorm[code]! - margin(code));
    const floor = kthValue(lower, k);
    const candidate = coarseSums.map((sum, code) => (sum / codes.templateNorm[code]! + margin(code) >= floor ? 1 : 0));
    let candidateRows = 0;
    for (let row = 0; row < this.size; row++) candidateRows += candidate[codes.ofRow[row]!]!;
    const exact = candidateRows > this.size / EXACT_PASS_ABOVE ? this.kernel.scores(embedding, this.size) : undefined;

    const sums = new Float32Array(codes.count).fill(-Infinity);
    const bestScore = new Float32Array(codes.count).fill(-Infinity);
    const bestRow = new Int32Array(codes.count);
    for (let row = 0; row < this.size; row++) {
      const code = codes.ofRow[row]!;
      if (!candidate[code]) continue;
      const score = exact ? exact[row]! : this.kernel.dot(embedding, row);
      sums[code] = (sums[code] === -Infinity ? 0 : sums[code]!) + score;
      if (score > bestScore[code]!) {
        bestScore[code] = score;
        bestRow[code] = row;
      }
    }
    const similarities = sums.map((sum, code) => sum / codes.templateNorm[code]!);
    return topK(similarities, k).map((code) => {
      const row = bestRow[code]!;
      return { subject: this.subjects[row]!, faceId: this.faceIds[row]!, similarity: similarities[code]! };
    });
  }

  /**
   * A coarse int8 pass bounds every score; only faces that could still reach the top k are scored exactly, so the
   * answer is the exact one.
   */
  private searchBestFaces(embedding: Float32Array, k: number): Match[] {
    const codes = this.subjectCodes();
    const coarse = this.kernel.coarseScores(embedding, this.size);
    const threshold = kthValue(bestPerSubject(coarse.scores, codes), k) - 2 * coarse.error;
    let candidates = 0;
    for (let row = 0; row < this.size; row++) if (coarse.scores[row]! >= threshold) candidates++;

    const bestScore = new Float32Array(codes.count).fill(-Infinity);
    const bestRow = new Int32Array(codes.count);
    const consider = (row: number, score: number) => {
      const code = codes.ofRow[row]!;
      if (score > bestScore[code]!) {
        bestScore[code] = score;
        bestRow[code] = row;
      }
    };
    if (candidates > this.size / EXACT_PASS_ABOVE) {
      const scores = this.kernel.scores(embedding, this.size);
      for (let row = 0; row < this.size; row++) consider(row, scores[row]!);
    } else {
      for (let row = 0; row < this.size; row++) if (coarse.scores[row]! >= threshold) consider(row, this.kernel.dot(embedding, row));
    }
    return topK(bestScore, k).map((code) => {
      const row = bestRow[code]!;
      return { subject: this.subjects[row]!, faceId: this.faceIds[row]!, similarity: bestScore[code]! };
    });
  }

  /** Each row's subject as a small integer, so the per-subject reduction needs no string hashing. Cached until the next change. */
  private codes: SubjectCodes | undefined;

  private subjectCodes(): SubjectCodes {
    if (this.codes) return this.codes;
    const numbers = new Map<string, number>();
    const ofRow = new Int32Array(this.size);
    for (let row = 0; row < this.size; row++) {
      const subject = this.subjects[row]!;
      let code = numbers.get(subject);
      if (code === undefined) numbers.set(subject, (code = numbers.size));
      ofRow[row] = code;
    }
    const sums = Array.from({ length: numbers.size }, () => new Float64Array(this.dimensions));
    for (let row = 0; row < this.size; row++) {
      const sum = sums[ofRow[row]!]!;
      this.kernel.row(row).forEach((value, d) => (sum[d]! += value));
    }
    const templateNorm = Float32Array.from(sums, (sum) => Math.hypot(...sum) || 1);
    const faces = new Int32Array(numbers.size);
    for (const code of ofRow) faces[code]!++;
    this.codes = { ofRow, count: numbers.size, templateNorm, faces };
    return this.codes;
  }

  serialize(): Uint8Array {
    const encoder = new TextEncoder();
    const labels = encoder.encode(JSON.stringify({ faceIds: this.faceIds, subjects: this.subjects, nextFace: this.nextFace }));
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
    if (bytes.byteLength < 16) throw new GalleryFormatError("gallery data is too short");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(0) !== MAGIC) throw new GalleryFormatError("not a facefleet gallery");
    const version = view.getUint32(4);
    if (version !== FORMAT_VERSION) throw new GalleryFormatError(`gallery format ${version} is not supported (expected ${FORMAT_VERSION})`);
    const dimensions = view.getUint32(8);
    const size = view.getUint32(12);
    const matrixBytes = size * dimensions * 4;
    if (bytes.byteLength < 16 + matrixBytes) throw new GalleryFormatError("gallery data is truncated");
    const gallery = new Gallery(dimensions, Math.max(size, 1));
    const packed = new Float32Array(bytes.slice(16, 16 + matrixBytes).buffer);
    for (let row = 0; row < size; row++) gallery.kernel.setRow(row, packed.subarray(row * dimensions, (row + 1) * dimensions));
    let labels: { faceIds: string[]; subjects: string[]; nextFace: number };
    try {
      labels = JSON.parse(new TextDecoder().decode(bytes.subarray(16 + matrixBytes)));
    } catch {
      throw new GalleryFormatError("gallery labels are damaged");
    }
    if (labels.faceIds?.length !== size || labels.subjects?.length !== size) throw new GalleryFormatError("gallery labels do not match its embeddings");
    gallery.faceIds = labels.faceIds;
    gallery.subjects = labels.subjects;
    gallery.nextFace = labels.nextFace;
    return gallery;
  }

  private removeRow(row: number): void {
    this.codes = undefined;
    const last = this.size - 1;
    if (row !== last) {
      this.kernel.copyRow(last, row);
      this.faceIds[row] = this.faceIds[last]!;
      this.subjects[row] = this.subjects[last]!;
    }
    this.faceIds.pop();
    this.subjects.pop();
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
  /** Per subject, the length of the sum of its faces' embeddings. */
  templateNorm: Float32Array;
  /** Per subject, how many faces it has. */
  faces: Int32Array;
}

/** Above size / this many candidates, one exact pass over every face beats scoring candidates one by one. */
const EXACT_PASS_ABOVE = 16;

function bestPerSubject(scores: Float32Array, codes: { ofRow: Int32Array; count: number }): Float32Array {
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
