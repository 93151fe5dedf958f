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
 * Something (a row, a subject code) found by a hash of its key: open addressing with linear probing over the entries
 * alone, the key read back from the entry (`hashOf`, and a `matches` predicate at lookup), so an entry costs 8 bytes
 * here and no object.
 */
class EntryTable {
  private entries = new Int32Array(16).fill(EMPTY);
  private count = 0;

  constructor(private readonly hashOf: (entry: number) => number) {}

  private slot(hash: number, matches: (entry: number) => boolean): number {
    const mask = this.entries.length - 1;
    let slot = hash & mask;
    while (this.entries[slot] !== EMPTY && !matches(this.entries[slot]!)) slot = (slot + 1) & mask;
    return slot;
  }

  get(hash: number, matches: (entry: number) => boolean): number | undefined {
    const entry = this.entries[this.slot(hash, matches)]!;
    return entry === EMPTY ? undefined : entry;
  }

  reserve(count: number): void {
    let size = this.entries.length;
    while (2 * count > size) size *= 2;
    if (size > this.entries.length) this.resize(size);
  }

  /** Files `entry` under the key `matches` recognises, replacing the entry there (one that moved: where it was). */
  set(hash: number, matches: (entry: number) => boolean, entry: number): void {
    if (2 * (this.count + 1) > this.entries.length) this.resize(this.entries.length * 2);
    const slot = this.slot(hash, matches);
    if (this.entries[slot] === EMPTY) this.count++;
    this.entries[slot] = entry;
  }

  delete(hash: number, matches: (entry: number) => boolean): void {
    const mask = this.entries.length - 1;
    let hole = this.slot(hash, matches);
    if (this.entries[hole] === EMPTY) return;
    this.count--;
    // Backward shift: entries after the hole that probed past it move into it, so no lookup stops short.
    for (let next = (hole + 1) & mask; this.entries[next] !== EMPTY; next = (next + 1) & mask) {
      const home = this.hashOf(this.entries[next]!) & mask;
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        this.entries[hole] = this.entries[next]!;
        hole = next;
      }
    }
    this.entries[hole] = EMPTY;
  }

  private resize(size: number): void {
    const entries = this.entries;
    this.entries = new Int32Array(size).fill(EMPTY);
    this.count = 0;
    for (const entry of entries) if (entry !== EMPTY) this.set(this.hashOf(entry), () => false, entry);
  }
}

const numberHash = (key: number) => Math.imul((key | 0) ^ ((key / 4294967296) | 0), 0x9e3779b1);

/** FNV-1a over bytes. */
function bytesHash(bytes: Uint8Array, at: number, length: number): number {
  let hash = 0x811c9dc5;
  for (let i = at; i < at + length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return hash;
}

/**
 * Strings held as UTF-8 in one buffer, one a slot (a row, a subject code), rather than as JavaScript strings: at a
 * million faces, live strings scattered among the garbage of the labels parsed at a load keep most of that garbage's
 * pages resident. A released or replaced string's bytes are left behind until most of the buffer is such.
 */
class TextStore {
  private at = new Uint32Array(0);
  private length = new Uint32Array(0);
  private bytes = new Uint8Array(0);
  private end = 0;
  /** Bytes that slots still use. */
  private live = 0;

  /** `isLive(slot)`: whether a slot's string is still used, for the copy that drops what was left behind. */
  constructor(private readonly isLive: (slot: number) => boolean, private readonly slotCount: () => number) {}

  reserve(slots: number): void {
    this.at = grown(this.at, slots);
    this.length = grown(this.length, slots);
  }

  get(slot: number): string {
    const at = this.at[slot]!;
    return decoder.decode(this.bytes.subarray(at, at + this.length[slot]!));
  }

  hash(slot: number): number {
    return bytesHash(this.bytes, this.at[slot]!, this.length[slot]!);
  }

  /** Whether slot holds the `length` bytes of `other` from 0. */
  equals(slot: number, other: Uint8Array, length: number): boolean {
    if (this.length[slot] !== length) return false;
    const at = this.at[slot]!;
    for (let i = 0; i < length; i++) if (this.bytes[at + i] !== other[i]) return false;
    return true;
  }

  set(slot: number, text: string): void {
    this.reserve(slot + 1);
    const room = 3 * text.length;
    // Full, and more than half of it left behind: copy the live slots' bytes into a new buffer.
    if (this.end + room > this.bytes.length && 2 * this.live < this.end) {
      const bytes = new Uint8Array(Math.max(16, 2 * (this.live + room)));
      let end = 0;
      for (let other = 0; other < this.slotCount(); other++) {
        if (other === slot || !this.isLive(other)) continue;
        const at = this.at[other]!;
        bytes.set(this.bytes.subarray(at, at + this.length[other]!), end);
        this.at[other] = end;
        end += this.length[other]!;
      }
      [this.bytes, this.end] = [bytes, end];
    }
    this.bytes = grown(this.bytes, this.end + room);
    const { written } = encoder.encodeInto(text, this.bytes.subarray(this.end));
    this.at[slot] = this.end;
    this.length[slot] = written;
    this.end += written;
    this.live += written;
  }

  release(slot: number): void {
    this.live -= this.length[slot]!;
    this.length[slot] = 0;
  }

  move(from: number, to: number): void {
    this.at[to] = this.at[from]!;
    this.length[to] = this.length[from]!;
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
  private readonly sources = new TextStore((row) => row < this.rows, () => this.rows);
  private readonly rowOf = new EntryTable((row) => numberHash(this.numbers[row]!));
  private rows = 0;

  /** Subject names by code; a code with no face is free (its name released). */
  private readonly names = new TextStore((code) => this.faceCounts[code]! > 0, () => this.codeCount);
  private readonly codeOfName = new EntryTable((code) => this.names.hash(code));
  private codeCount = 0;
  private subjects = 0;
  private faceCounts = new Int32Array(0);
  private readonly freeCodes: number[] = [];
  /** Subjects' codes in listing order, made when first listed and kept up to date after. */
  private sorted: number[] | undefined;
  /** A name looked up, as UTF-8. */
  private key = new Uint8Array(64);
  private keyLength = 0;

  private readonly segmentKeys: string[] = [];
  private readonly segmentNumber = new Map<string, number>();

  get size(): number {
    return this.rows;
  }

  get subjectCount(): number {
    return this.subjects;
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
      this.sources.set(row, details.source);
    }
    this.rowOf.set(numberHash(number), (other) => this.numbers[other] === number, row);
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
      this.sources.reserve(faces);
    }
    this.rowOf.reserve(faces);
  }

  rowOfFace(faceId: string): number | undefined {
    const number = faceNumberOf(faceId);
    return number === undefined ? undefined : this.rowOf.get(numberHash(number), (row) => this.numbers[row] === number);
  }

  faceIdAt(row: number): string {
    return `f${this.numbers[row]}`;
  }

  subjectAt(row: number): string {
    return this.names.get(this.codes[row]!);
  }

  detailsAt(row: number): FaceDetails {
    if (!this.keepDetails) return { createdAt: "", source: "" };
    const ms = this.createdMs[row]!;
    const createdAt = Number.isNaN(ms) ? (this.oddCreatedAt.get(this.numbers[row]!) ?? "") : new Date(ms).toISOString();
    return { createdAt, source: this.sources.get(row) };
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
    const code = this.codeOf(subject);
    return code === undefined ? 0 : this.faceCounts[code]!;
  }

  /** A subject's code (a small integer while it has faces, reused after), or undefined when it has no face. */
  subjectCode(subject: string): number | undefined {
    return this.codeOf(subject);
  }

  subjectCodeAt(row: number): number {
    return this.codes[row]!;
  }

  /** The rows of a subject's faces: one pass over the rows (a millisecond at a million faces). */
  rowsOf(subject: string): number[] {
    const code = this.codeOf(subject);
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
    this.sorted ??= this.sortedCodes();
    return this.sorted.slice(offset, offset + count).map((code) => ({ subject: this.names.get(code), faces: this.faceCounts[code]! }));
  }

  /** Removes a row, moving the last row into it; returns the row that moved (the last), or undefined when none did. */
  removeRow(row: number): number | undefined {
    const last = --this.rows;
    const number = this.numbers[row]!;
    this.rowOf.delete(numberHash(number), (other) => this.numbers[other] === number);
    this.oddCreatedAt.delete(number);
    if (this.keepDetails) this.sources.release(row);
    const code = this.codes[row]!;
    if (--this.faceCounts[code]! === 0) this.freeCode(code);
    if (row === last) return undefined;
    this.numbers[row] = this.numbers[last]!;
    this.codes[row] = this.codes[last]!;
    this.segments[row] = this.segments[last]!;
    if (this.keepDetails) {
      this.createdMs[row] = this.createdMs[last]!;
      this.sources.move(last, row);
    }
    const moved = this.numbers[row]!;
    this.rowOf.set(numberHash(moved), (other) => this.numbers[other] === moved, row);
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
    const code = this.codeOf(from);
    if (code === undefined) return 0;
    const moved = this.faceCounts[code]!;
    if (from === to) return moved;
    const into = this.codeOf(to);
    if (into === undefined) {
      this.unlist(code);
      this.unfile(code);
      this.names.release(code);
      this.names.set(code, to);
      this.file(code);
      this.enlist(code);
      return moved;
    }
    for (let row = 0; row < this.rows; row++) if (this.codes[row] === code) this.codes[row] = into;
    this.faceCounts[into]! += moved;
    this.faceCounts[code] = 0;
    this.freeCode(code);
    return moved;
  }

  /** Puts `subject` in `key`; the hash of its bytes. */
  private keyOf(subject: string): number {
    if (3 * subject.length > this.key.length) this.key = new Uint8Array(2 * 3 * subject.length);
    this.keyLength = encoder.encodeInto(subject, this.key).written;
    return bytesHash(this.key, 0, this.keyLength);
  }

  private readonly isKey = (code: number) => this.names.equals(code, this.key, this.keyLength);

  private codeOf(subject: string): number | undefined {
    return this.codeOfName.get(this.keyOf(subject), this.isKey);
  }

  /** Files a code under its name, or takes it out. */
  private file(code: number): void {
    this.codeOfName.set(this.names.hash(code), (other) => other === code, code);
  }

  private unfile(code: number): void {
    this.codeOfName.delete(this.names.hash(code), (other) => other === code);
  }

  private codeFor(subject: string): number {
    let code = this.codeOf(subject);
    if (code !== undefined) return code;
    code = this.freeCodes.pop() ?? this.codeCount++;
    this.faceCounts = grown(this.faceCounts, code + 1);
    this.names.set(code, subject);
    this.subjects++;
    this.file(code);
    this.enlist(code);
    return code;
  }

  private freeCode(code: number): void {
    this.unlist(code);
    this.unfile(code);
    this.names.release(code);
    this.subjects--;
    this.freeCodes.push(code);
  }

  private sortedCodes(): number[] {
    const codes: number[] = [];
    const names: string[] = [];
    for (let code = 0; code < this.codeCount; code++) {
      if (this.faceCounts[code]! === 0) continue;
      codes.push(code);
      names[code] = this.names.get(code);
    }
    return codes.sort((a, b) => collator.compare(names[a]!, names[b]!));
  }

  /** Where a subject named `subject` is, or would go, in the sorted list: a binary search. */
  private sortedPosition(sorted: number[], subject: string): number {
    let low = 0;
    let high = sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (collator.compare(this.names.get(sorted[middle]!), subject) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private enlist(code: number): void {
    if (this.sorted) this.sorted.splice(this.sortedPosition(this.sorted, this.names.get(code)), 0, code);
  }

  private unlist(code: number): void {
    if (!this.sorted) return;
    const at = this.sortedPosition(this.sorted, this.names.get(code));
    this.sorted.splice(this.sorted[at] === code ? at : this.sorted.indexOf(code), 1);
  }

  private segmentFor(key: string): number {
    let segment = this.segmentNumber.get(key);
    if (segment === undefined) {
      segment = this.segmentKeys.push(key) - 1;
      this.segmentNumber.set(key, segment);
    }
    return segment;
  }
}
