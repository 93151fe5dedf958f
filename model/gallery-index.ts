/**
 * The gallery's names without its vectors: each face's id, subject, details and (for the store) the segment it is in,
 * one row a face in typed arrays, rows removed by moving the last row into the hole (as the Gallery's matrix does, so a
 * Gallery keeps its rows and these in step). What the web role holds, and the labels of an app instance's Gallery: at a
 * million faces a few tens of bytes a face, where a JavaScript object, string and map entry a face cost hundreds.
 */
import type { FaceDetails, SubjectSummary } from "./gallery.ts";

const EMPTY = -1;
const collator = new Intl.Collator();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Face number (the `7` of `f7`) to row: open addressing with linear probing over the rows alone, a slot's key being
 * its row's face number (`keyOf`), so a face costs 8 bytes here and no object.
 */
class RowTable {
  private rows = new Int32Array(16).fill(EMPTY);
  private count = 0;

  constructor(private readonly keyOf: (row: number) => number) {}

  private home(key: number): number {
    return Math.imul((key | 0) ^ ((key / 4294967296) | 0), 0x9e3779b1) & (this.rows.length - 1);
  }

  private slot(key: number): number {
    const mask = this.rows.length - 1;
    let slot = this.home(key);
    while (this.rows[slot] !== EMPTY && this.keyOf(this.rows[slot]!) !== key) slot = (slot + 1) & mask;
    return slot;
  }

  get(key: number): number | undefined {
    const row = this.rows[this.slot(key)]!;
    return row === EMPTY ? undefined : row;
  }

  reserve(count: number): void {
    let size = this.rows.length;
    while (2 * count > size) size *= 2;
    if (size > this.rows.length) this.resize(size);
  }

  /** Files `row` under its face number, `key` (a row that moved: where the old row was). */
  set(key: number, row: number): void {
    if (2 * (this.count + 1) > this.rows.length) this.resize(this.rows.length * 2);
    const slot = this.slot(key);
    if (this.rows[slot] === EMPTY) this.count++;
    this.rows[slot] = row;
  }

  delete(key: number): void {
    const mask = this.rows.length - 1;
    let hole = this.slot(key);
    if (this.rows[hole] === EMPTY) return;
    this.count--;
    // Backward shift: entries after the hole that probed past it move into it, so no lookup stops short.
    for (let next = (hole + 1) & mask; this.rows[next] !== EMPTY; next = (next + 1) & mask) {
      const home = this.home(this.keyOf(this.rows[next]!));
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        this.rows[hole] = this.rows[next]!;
        hole = next;
      }
    }
    this.rows[hole] = EMPTY;
  }

  private resize(size: number): void {
    const rows = this.rows;
    this.rows = new Int32Array(size).fill(EMPTY);
    this.count = 0;
    for (const row of rows) if (row !== EMPTY) this.set(this.keyOf(row), row);
  }
}

/** `array`, or a copy of it with room for `needed` (and at least twice its length, so growing one by one stays linear). */
function grown<T extends Float64Array | Int32Array | Uint32Array | Uint8Array>(array: T, needed: number): T {
  if (needed <= array.length) return array;
  const larger = new (array.constructor as new (length: number) => T)(Math.max(needed, 2 * array.length, 16));
  larger.set(array);
  return larger;
}

/** The number of a face id (`f7`: 7, no leading zero); undefined for any other string. */
function faceNumberOf(faceId: string): number | undefined {
  const length = faceId.length;
  if (length < 2 || length > 17 || faceId.charCodeAt(0) !== 0x66 || (faceId.charCodeAt(1) === 0x30 && length > 2)) return undefined;
  let number = 0;
  for (let i = 1; i < length; i++) {
    const digit = faceId.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return undefined;
    number = number * 10 + digit;
  }
  return Number.isSafeInteger(number) ? number : undefined;
}

/** A createdAt that is an ISO 8601 instant is kept as its milliseconds; any other text in `odd`, by face number. */
const ISO_INSTANT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

export class GalleryIndex {
  /** `keepDetails` false: createdAt and source are dropped as faces come (every face's are empty). */
  constructor(private readonly keepDetails = true) {}

  private numbers = new Float64Array(0);
  private codes = new Int32Array(0);
  private segments = new Int32Array(0);
  private createdMs = new Float64Array(0);
  private oddCreatedAt = new Map<number, string>();
  /** Each row's source, UTF-8 in `text` from its offset for its length; a removed row's bytes are left behind. */
  private sourceAt = new Uint32Array(0);
  private sourceLength = new Uint32Array(0);
  private text = new Uint8Array(0);
  private textEnd = 0;
  /** Bytes of `text` that rows still use. */
  private textLive = 0;
  private readonly rowOf = new RowTable((row) => this.numbers[row]!);
  private rows = 0;

  private readonly nameOf: string[] = [];
  private readonly codeOf = new Map<string, number>();
  private faceCounts = new Int32Array(0);
  private readonly freeCodes: number[] = [];
  /** Subjects in listing order, made when first listed and kept up to date after. */
  private sorted: string[] | undefined;

  private readonly segmentKeys: string[] = [];
  private readonly segmentNumber = new Map<string, number>();

  get size(): number {
    return this.rows;
  }

  get subjectCount(): number {
    return this.codeOf.size;
  }

  /** Adds a face at the last row (replacing the face of that id first, if there is one); returns its row. */
  insert(faceId: string, subject: string, details: FaceDetails, segment?: string): number {
    const number = faceNumberOf(faceId);
    if (number === undefined) throw new Error(`'${faceId}' is not a face id (f and a number)`);
    this.removeFace(faceId);
    const row = this.rows++;
    if (this.rows > this.numbers.length) this.reserve(Math.max(16, 2 * this.numbers.length));
    this.numbers[row] = number;
    this.codes[row] = this.codeFor(subject);
    this.faceCounts[this.codes[row]!]!++;
    this.segments[row] = segment === undefined ? EMPTY : this.segmentFor(segment);
    if (this.keepDetails) {
      this.createdMs[row] = ISO_INSTANT.test(details.createdAt) ? Date.parse(details.createdAt) : NaN;
      if (details.createdAt !== "" && Number.isNaN(this.createdMs[row])) this.oddCreatedAt.set(number, details.createdAt);
      this.storeSource(row, details.source);
    }
    this.rowOf.set(number, row);
    return row;
  }

  /** Makes room for `faces` faces at once (a load knows how many are coming), rather than growing as they come. */
  reserve(faces: number): void {
    if (faces <= this.numbers.length) return;
    this.numbers = grown(this.numbers, faces);
    this.codes = grown(this.codes, faces);
    this.segments = grown(this.segments, faces);
    if (this.keepDetails) {
      this.createdMs = grown(this.createdMs, faces);
      this.sourceAt = grown(this.sourceAt, faces);
      this.sourceLength = grown(this.sourceLength, faces);
    }
    this.rowOf.reserve(faces);
  }

  rowOfFace(faceId: string): number | undefined {
    const number = faceNumberOf(faceId);
    return number === undefined ? undefined : this.rowOf.get(number);
  }

  faceIdAt(row: number): string {
    return `f${this.numbers[row]}`;
  }

  subjectAt(row: number): string {
    return this.nameOf[this.codes[row]!]!;
  }

  detailsAt(row: number): FaceDetails {
    if (!this.keepDetails) return { createdAt: "", source: "" };
    const ms = this.createdMs[row]!;
    const createdAt = Number.isNaN(ms) ? (this.oddCreatedAt.get(this.numbers[row]!) ?? "") : new Date(ms).toISOString();
    const at = this.sourceAt[row]!;
    return { createdAt, source: decoder.decode(this.text.subarray(at, at + this.sourceLength[row]!)) };
  }

  /** The segment a face is stored in; undefined: in the log. */
  segmentAt(row: number): string | undefined {
    const segment = this.segments[row]!;
    return segment === EMPTY ? undefined : this.segmentKeys[segment];
  }

  setSegment(row: number, segment: string): void {
    this.segments[row] = this.segmentFor(segment);
  }

  /**
   * The ids of the faces whose segment `keep` takes (every face by default), grouped by segment, the faces in the log
   * last, in the order they were enrolled: read in this order, each segment is read once.
   */
  faceIdsBySegment(keep: (segment: string | undefined) => boolean = () => true): string[] {
    const kept = this.segmentKeys.map((key) => keep(key));
    const inLog: number[] = [];
    const bySegment: number[][] = this.segmentKeys.map(() => []);
    for (let row = 0; row < this.rows; row++) {
      const segment = this.segments[row]!;
      if (segment === EMPTY) inLog.push(row);
      else if (kept[segment]) bySegment[segment]!.push(row);
    }
    const logged = keep(undefined) ? inLog.sort((a, b) => this.numbers[a]! - this.numbers[b]!) : [];
    return [...bySegment.flat(), ...logged].map((row) => this.faceIdAt(row));
  }

  hasFace(faceId: string): boolean {
    return this.rowOfFace(faceId) !== undefined;
  }

  subjectOf(faceId: string): string | undefined {
    const row = this.rowOfFace(faceId);
    return row === undefined ? undefined : this.subjectAt(row);
  }

  faceCount(subject: string): number {
    const code = this.codeOf.get(subject);
    return code === undefined ? 0 : this.faceCounts[code]!;
  }

  /** The rows of a subject's faces: one pass over the rows (a millisecond at a million faces). */
  rowsOf(subject: string): number[] {
    const code = this.codeOf.get(subject);
    const rows: number[] = [];
    if (code === undefined) return rows;
    for (let row = 0; row < this.rows; row++) if (this.codes[row] === code) rows.push(row);
    return rows;
  }

  /** A subject's faces, oldest first. */
  facesOf(subject: string): (FaceDetails & { faceId: string })[] {
    return this.rowsOf(subject)
      .sort((a, b) => this.numbers[a]! - this.numbers[b]!)
      .map((row) => ({ faceId: this.faceIdAt(row), ...this.detailsAt(row) }));
  }

  /** The subjects by name, `count` of them from the `offset`-th (all by default). */
  list(offset = 0, count = Infinity): SubjectSummary[] {
    this.sorted ??= [...this.codeOf.keys()].sort(collator.compare);
    return this.sorted.slice(offset, offset + count).map((subject) => ({ subject, faces: this.faceCount(subject) }));
  }

  /** Removes a row, moving the last row into it; returns the row that moved (the last), or undefined when none did. */
  removeRow(row: number): number | undefined {
    const last = --this.rows;
    const number = this.numbers[row]!;
    this.rowOf.delete(number);
    this.oddCreatedAt.delete(number);
    if (this.keepDetails) this.textLive -= this.sourceLength[row]!;
    const code = this.codes[row]!;
    if (--this.faceCounts[code]! === 0) this.freeCode(code);
    if (row === last) return undefined;
    this.numbers[row] = this.numbers[last]!;
    this.codes[row] = this.codes[last]!;
    this.segments[row] = this.segments[last]!;
    if (this.keepDetails) {
      this.createdMs[row] = this.createdMs[last]!;
      this.sourceAt[row] = this.sourceAt[last]!;
      this.sourceLength[row] = this.sourceLength[last]!;
    }
    this.rowOf.set(this.numbers[row]!, row);
    return last;
  }

  removeFace(faceId: string): boolean {
    const row = this.rowOfFace(faceId);
    if (row === undefined) return false;
    this.removeRow(row);
    return true;
  }

  /** Gives every face of `from` to `to` (merging when `to` has faces); returns how many moved. */
  renameSubject(from: string, to: string): number {
    const code = this.codeOf.get(from);
    if (code === undefined) return 0;
    const moved = this.faceCounts[code]!;
    if (from === to) return moved;
    const into = this.codeOf.get(to);
    if (into === undefined) {
      this.codeOf.delete(from);
      this.codeOf.set(to, code);
      this.nameOf[code] = to;
      this.unlist(from);
      this.enlist(to);
      return moved;
    }
    for (let row = 0; row < this.rows; row++) if (this.codes[row] === code) this.codes[row] = into;
    this.faceCounts[into]! += moved;
    this.faceCounts[code] = 0;
    this.freeCode(code);
    return moved;
  }

  private codeFor(subject: string): number {
    let code = this.codeOf.get(subject);
    if (code !== undefined) return code;
    code = this.freeCodes.pop() ?? this.nameOf.length;
    this.faceCounts = grown(this.faceCounts, code + 1);
    this.nameOf[code] = subject;
    this.codeOf.set(subject, code);
    this.enlist(subject);
    return code;
  }

  private freeCode(code: number): void {
    const subject = this.nameOf[code]!;
    this.codeOf.delete(subject);
    this.nameOf[code] = "";
    this.freeCodes.push(code);
    this.unlist(subject);
  }

  /** Where `subject` is, or would go, in the sorted list: a binary search. */
  private sortedPosition(sorted: string[], subject: string): number {
    let low = 0;
    let high = sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (collator.compare(sorted[middle]!, subject) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private enlist(subject: string): void {
    if (this.sorted) this.sorted.splice(this.sortedPosition(this.sorted, subject), 0, subject);
  }

  private unlist(subject: string): void {
    if (!this.sorted) return;
    const at = this.sortedPosition(this.sorted, subject);
    if (this.sorted[at] === subject) this.sorted.splice(at, 1);
    else this.sorted.splice(this.sorted.indexOf(subject), 1);
  }

  private segmentFor(key: string): number {
    let segment = this.segmentNumber.get(key);
    if (segment === undefined) {
      segment = this.segmentKeys.push(key) - 1;
      this.segmentNumber.set(key, segment);
    }
    return segment;
  }

  private storeSource(row: number, source: string): void {
    const room = 3 * source.length;
    // Full, and more than half of it left behind by removed rows: copy the rows' bytes into a new one.
    if (this.textEnd + room > this.text.length && 2 * this.textLive < this.textEnd) {
      const text = new Uint8Array(Math.max(16, 2 * (this.textLive + room)));
      let end = 0;
      for (let other = 0; other < this.rows; other++) {
        if (other === row) continue;
        const at = this.sourceAt[other]!;
        text.set(this.text.subarray(at, at + this.sourceLength[other]!), end);
        this.sourceAt[other] = end;
        end += this.sourceLength[other]!;
      }
      [this.text, this.textEnd] = [text, end];
    }
    this.text = grown(this.text, this.textEnd + room);
    const { written } = encoder.encodeInto(source, this.text.subarray(this.textEnd));
    this.sourceAt[row] = this.textEnd;
    this.sourceLength[row] = written;
    this.textEnd += written;
    this.textLive += written;
  }
}
