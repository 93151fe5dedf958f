/**
 * The gallery of enrolled faces: pure and storage-free. Embeddings live in a Float32 matrix (row i = face i, in blocks
 * of 2^20 rows) with an int8 shadow, searched with WebAssembly SIMD kernels: an int8 pass over every row, then an exact
 * float32 re-rank of every row the int8 error bound cannot rule out, so the answer is the float32 brute force's.
 * Removal swaps the last row into the hole.
 */
import { BLOCK_ROWS, DotKernel } from "./dot-kernel.ts";

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

  /** `blockRows`: rows per kernel block (each its own wasm memory); smaller only to test searches across blocks. */
  constructor(readonly dimensions: number, capacity = 64, private readonly blockRows = BLOCK_ROWS) {
    if (!Number.isInteger(dimensions) || dimensions <= 0) throw new Error(`invalid embedding dimensions ${dimensions}`);
    this.kernel = new DotKernel(dimensions, capacity, blockRows);
  }

  get size(): number {
    return this.faceIds.length;
  }

  enroll(subject: string, embedding: Float32Array, details: FaceDetails = NO_DETAILS): string {
    this.checkDimensions(embedding);
    this.kernel.reserve(this.size + 1);
    this.codes = undefined;
    const faceId = `f${this.nextFace++}`;
    this.kernel.setRow(this.size, embedding);
    this.faceIds.push(faceId);
    this.subjects.push(subject);
    this.details.push(details);
    return faceId;
  }

  /** A subject's faces, oldest first. */
  facesOf(subject: string): (FaceDetails & { faceId: string })[] {
    const faces: (FaceDetails & { faceId: string })[] = [];
    for (let row = 0; row < this.size; row++) if (this.subjects[row] === subject) faces.push({ faceId: this.faceIds[row]!, ...this.details[row]! });
    return faces.sort((a, b) => Number(a.faceId.slice(1)) - Number(b.faceId.slice(1)));
  }

  /** Gives every face of `from` to `to` (merging when `to` has faces); returns how many moved. */
  renameSubject(from: string, to: string): number {
    let moved = 0;
    for (let row = 0; row < this.size; row++) {
      if (this.subjects[row] !== from) continue;
      this.subjects[row] = to;
      moved++;
    }
    if (moved > 0) this.codes = undefined;
    return moved;
  }

  /** The similarity of `embedding` to one subject, scored as `search` scores it; undefined when the subject has no face. */
  subjectSimilarity(subject: string, embedding: Float32Array, scoring: SubjectScoring = "template"): number | undefined {
    this.checkDimensions(embedding);
    const row = this.subjects.indexOf(subject);
    if (row < 0) return undefined;
    const codes = this.subjectCodes();
    const code = codes.ofRow[row]!;
    if (scoring === "template") return this.templateKernel(codes).dot(embedding, code);
    return Math.max(...codes.rowsOf[code]!.map((face) => this.kernel.dot(embedding, face)));
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
   * The templates are rows of their own kernel (one per subject, rebuilt after a change), searched like faces; then each
   * of the k subjects' faces is scored exactly to name its most similar one.
   */
  private searchTemplates(embedding: Float32Array, k: number): Match[] {
    const codes = this.subjectCodes();
    const templates = this.templateKernel(codes);
    return bestRows(templates, codes.count, { ofRow: codes.identity, count: codes.count, best: codes.best }, embedding, k).map(({ score, code }) => {
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

  /** Each row's subject as a small integer, so the per-subject reduction needs no string hashing. Cached until the next change. */
  private codes: SubjectCodes | undefined;
  /** Row `code` = that subject's template. Cached with `codes`. */
  private templates: DotKernel | undefined;

  private subjectCodes(): SubjectCodes {
    if (this.codes) return this.codes;
    const numbers = new Map<string, number>();
    const ofRow = new Int32Array(this.size);
    const rowsOf: number[][] = [];
    for (let row = 0; row < this.size; row++) {
      const subject = this.subjects[row]!;
      let code = numbers.get(subject);
      if (code === undefined) {
        numbers.set(subject, (code = numbers.size));
        rowsOf.push([]);
      }
      ofRow[row] = code;
      rowsOf[code]!.push(row);
    }
    const identity = new Int32Array(numbers.size);
    for (let code = 0; code < identity.length; code++) identity[code] = code;
    const best = { score: new Float32Array(numbers.size).fill(-Infinity), row: new Int32Array(numbers.size) };
    this.codes = { ofRow, count: numbers.size, rowsOf, identity, best };
    this.templates = undefined;
    return this.codes;
  }

  private templateKernel(codes: SubjectCodes): DotKernel {
    if (this.templates) return this.templates;
    const templates = new DotKernel(this.dimensions, Math.max(codes.count, 1), this.blockRows);
    const sum = new Float64Array(this.dimensions);
    const template = new Float32Array(this.dimensions);
    codes.rowsOf.forEach((rows, code) => {
      sum.fill(0);
      for (const row of rows) {
        const values = this.kernel.row(row);
        for (let d = 0; d < values.length; d++) sum[d]! += values[d]!;
      }
      // Not Math.hypot(...sum): the spread made an array per subject, gigabytes of garbage at millions of subjects.
      const norm = (Reflect.apply(Math.hypot, undefined, sum) as number) || 1;
      for (let d = 0; d < template.length; d++) template[d] = sum[d]! / norm;
      templates.setRow(code, template);
    });
    this.templates = templates;
    return templates;
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
    let labels: { faceIds: string[]; subjects: string[]; details?: FaceDetails[]; nextFace: number };
    try {
      labels = JSON.parse(new TextDecoder().decode(bytes.subarray(16 + matrixBytes)));
    } catch {
      throw new GalleryFormatError("gallery labels are damaged");
    }
    if (labels.faceIds?.length !== size || labels.subjects?.length !== size) throw new GalleryFormatError("gallery labels do not match its embeddings");
    gallery.faceIds = labels.faceIds;
    gallery.subjects = labels.subjects;
    // Galleries saved before faces had details still load.
    gallery.details = labels.details?.length === size ? labels.details : labels.faceIds.map(() => NO_DETAILS);
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
      this.details[row] = this.details[last]!;
    }
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
  /** code -> code: the templates' rows are the subjects. */
  identity: Int32Array;
  /** Each subject's best exact score (-Infinity between searches) and row, reused by every search. */
  best: { score: Float32Array; row: Int32Array };
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
