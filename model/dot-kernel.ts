/**
 * Dot products of one query with every row of a matrix, in WebAssembly SIMD, assembled here (a few hundred
 * bytes, nothing fetched or built). Two kernels over the same rows:
 * - `exact`: float32 rows (f32x4, two accumulators);
 * - `coarse`: the rows quantised to int8 (one scale per row) against the query quantised to int16-held int8
 *   (i32x4.dot_i16x8_s), a quarter of the memory traffic, for a first pass whose error has a known bound.
 * Rows are padded to a multiple of 16 values; matrices, queries and results all live in the module's memory.
 */

const PAGE_BYTES = 65536;

function leb128(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

const section = (id: number, body: number[]) => [id, ...leb128(body.length), ...body];
const vector = (items: number[][]) => [...leb128(items.length), ...items.flat()];
const name = (text: string) => [...leb128(text.length), ...new TextEncoder().encode(text)];

// Opcodes used below (WebAssembly core and SIMD specifications).
const I32 = 0x7f, V128 = 0x7b;
const LOCAL_GET = 0x20, LOCAL_SET = 0x21, LOCAL_TEE = 0x22, I32_CONST = 0x41, I32_ADD = 0x6a, I32_SUB = 0x6b;
const I32_LT_U = 0x49, I32_EQZ = 0x45, BR_IF = 0x0d, BLOCK = 0x02, LOOP = 0x03, END = 0x0b, VOID = 0x40;
const F32_ADD = 0x92, F32_STORE = [0x38, 0x02, 0x00], I32_STORE = [0x36, 0x02, 0x00];
const SIMD = 0xfd;
const simd = (opcode: number) => [SIMD, ...leb128(opcode)];
const V128_ZERO = [SIMD, 0x0c, ...new Array(16).fill(0)];
const F32X4_ADD = simd(228), F32X4_MUL = simd(230), I32X4_ADD = simd(174), I32X4_DOT_I16X8 = simd(186);
const I16X8_EXTEND_LOW_I8X16 = simd(135), I16X8_EXTEND_HIGH_I8X16 = simd(136);
const f32Lane = (lane: number) => [SIMD, 0x1f, lane];
const i32Lane = (lane: number) => [SIMD, 0x1b, lane];

// Both kernels: (matrix, query, out, rows, rowBytes) -> void, out[r] = dot(matrix row r, query).
// Parameters 0-4; locals j = 5, a = 6, b = 7.
const [MATRIX, QUERY, OUT, ROWS, ROW_BYTES, J, A, B] = [0, 1, 2, 3, 4, 5, 6, 7];
const get = (local: number) => [LOCAL_GET, local];
const load = (offset: number) => [SIMD, 0x00, 0x00, ...leb128(offset)];
const rowAt = (offset: number) => [...get(MATRIX), ...get(J), I32_ADD, ...load(offset)];

/** The loop over rows, around `inner` (one step of `step` row bytes, accumulating into A and B) and `store` (A, B -> out). */
function kernel(inner: number[], step: number, store: number[]): number[] {
  return [
    ...vector([[1, I32], [2, V128]]),
    BLOCK, VOID,
    ...get(ROWS), I32_EQZ, BR_IF, 0,
    LOOP, VOID,
    ...V128_ZERO, LOCAL_SET, A,
    ...V128_ZERO, LOCAL_SET, B,
    I32_CONST, 0, LOCAL_SET, J,
    LOOP, VOID,
    ...inner,
    ...get(J), I32_CONST, ...leb128(step), I32_ADD, LOCAL_TEE, J, ...get(ROW_BYTES), I32_LT_U, BR_IF, 0,
    END,
    ...get(OUT), ...store,
    ...get(OUT), I32_CONST, 4, I32_ADD, LOCAL_SET, OUT,
    ...get(MATRIX), ...get(ROW_BYTES), I32_ADD, LOCAL_SET, MATRIX,
    ...get(ROWS), I32_CONST, 1, I32_SUB, LOCAL_TEE, ROWS, BR_IF, 0,
    END,
    END,
    END,
  ];
}

const queryF32At = (offset: number) => [...get(QUERY), ...get(J), I32_ADD, ...load(offset)];
const exact = kernel(
  [
    ...get(A), ...rowAt(0), ...queryF32At(0), ...F32X4_MUL, ...F32X4_ADD, LOCAL_SET, A,
    ...get(B), ...rowAt(16), ...queryF32At(16), ...F32X4_MUL, ...F32X4_ADD, LOCAL_SET, B,
  ],
  32,
  [
    ...get(A), ...get(B), ...F32X4_ADD, LOCAL_SET, A,
    ...get(A), ...f32Lane(0), ...get(A), ...f32Lane(1), F32_ADD, ...get(A), ...f32Lane(2), F32_ADD, ...get(A), ...f32Lane(3), F32_ADD,
    ...F32_STORE,
  ],
);

// The int16 query sits at twice the row's byte offset: 16 int8 row values meet 32 bytes of query.
const queryI16At = (offset: number) => [...get(QUERY), ...get(J), ...get(J), I32_ADD, I32_ADD, ...load(offset)];
const coarse = kernel(
  [
    ...rowAt(0), LOCAL_SET, B,
    ...get(A), ...get(B), ...I16X8_EXTEND_LOW_I8X16, ...queryI16At(0), ...I32X4_DOT_I16X8, ...I32X4_ADD, LOCAL_SET, A,
    ...get(A), ...get(B), ...I16X8_EXTEND_HIGH_I8X16, ...queryI16At(16), ...I32X4_DOT_I16X8, ...I32X4_ADD, LOCAL_SET, A,
  ],
  16,
  [...get(A), ...i32Lane(0), ...get(A), ...i32Lane(1), I32_ADD, ...get(A), ...i32Lane(2), I32_ADD, ...get(A), ...i32Lane(3), I32_ADD, ...I32_STORE],
);

const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, vector([[0x60, ...vector([[I32], [I32], [I32], [I32], [I32]]), 0x00]])),
  ...section(3, vector([[0x00], [0x00]])),
  ...section(5, vector([[0x00, 0x01]])),
  ...section(7, vector([[...name("memory"), 0x02, 0x00], [...name("exact"), 0x00, 0x00], [...name("coarse"), 0x00, 0x01]])),
  ...section(10, vector([[...leb128(exact.length), ...exact], [...leb128(coarse.length), ...coarse]])),
]);

const compiled = new WebAssembly.Module(MODULE);

type KernelFunction = (matrix: number, query: number, out: number, rows: number, rowBytes: number) => void;

/** int8 quantisation with one scale per vector: value ~= code * scale. */
function quantise(vector: Float32Array, codes: Int8Array | Int16Array): number {
  let largest = 0;
  for (let i = 0; i < vector.length; i++) largest = Math.max(largest, Math.abs(vector[i]!));
  const scale = largest > 0 ? largest / 127 : 1;
  for (let i = 0; i < vector.length; i++) codes[i] = Math.round(vector[i]! / scale);
  return scale;
}

/** Float rounding of the exact and coarse sums, added to the quantisation bound. */
const ROUNDING_SLACK = 1e-5;

/** A matrix of `rows` x `dimensions` floats with room to grow, its int8 shadow, and the query and result buffers. */
export class DotKernel {
  /** Values per row, padding included. */
  readonly stride: number;
  private readonly memory: WebAssembly.Memory;
  private readonly exactOf: KernelFunction;
  private readonly coarseOf: KernelFunction;
  private capacity = 0;
  private rowScales = new Float32Array();
  /** Upper bounds over all rows ever held (removal keeps them valid). */
  private largestRowScale = 0;
  private largestRowL1 = 0;
  private coarse = new Float32Array();

  constructor(readonly dimensions: number, capacity: number) {
    this.stride = Math.ceil(dimensions / 16) * 16;
    const instance = new WebAssembly.Instance(compiled);
    this.memory = instance.exports.memory as WebAssembly.Memory;
    this.exactOf = instance.exports.exact as KernelFunction;
    this.coarseOf = instance.exports.coarse as KernelFunction;
    this.reserve(capacity);
  }

  // Layout in bytes: float query | int16 query | float scores | int32 coarse dots | float matrix | int8 matrix.
  private get queryI16Offset(): number {
    return this.stride * 4;
  }
  private get scoresOffset(): number {
    return this.queryI16Offset + this.stride * 2;
  }
  private get dotsOffset(): number {
    return this.scoresOffset + this.capacity * 4;
  }
  private get matrixOffset(): number {
    return this.dotsOffset + this.capacity * 4;
  }
  private get codesOffset(): number {
    return this.matrixOffset + this.capacity * this.stride * 4;
  }

  /** Makes room for `rows` rows, keeping the ones held. */
  reserve(rows: number): void {
    if (rows <= this.capacity) return;
    const held = this.matrix().slice();
    const heldCodes = this.codes().slice();
    const capacity = Math.ceil(Math.max(rows, this.capacity * 2, 16) / 4) * 4;
    const needed = this.stride * 6 + capacity * 8 + capacity * this.stride * 5;
    const missing = Math.ceil((needed - this.memory.buffer.byteLength) / PAGE_BYTES);
    if (missing > 0) this.memory.grow(missing);
    this.capacity = capacity;
    this.matrix().set(held);
    this.codes().set(heldCodes);
    const scales = new Float32Array(capacity);
    scales.set(this.rowScales);
    this.rowScales = scales;
    this.coarse = new Float32Array(capacity);
  }

  /** Row `row` of the float matrix (padding excluded). Valid until the next reserve(). */
  row(row: number): Float32Array {
    return new Float32Array(this.memory.buffer, this.matrixOffset + row * this.stride * 4, this.dimensions);
  }

  setRow(row: number, embedding: Float32Array): void {
    // The padding too: after a reserve() it holds whatever bytes lay there, and NaN x 0 would poison the exact score.
    const padded = new Float32Array(this.memory.buffer, this.matrixOffset + row * this.stride * 4, this.stride);
    padded.fill(0);
    padded.set(embedding);
    const codes = new Int8Array(this.memory.buffer, this.codesOffset + row * this.stride, this.dimensions);
    const scale = quantise(embedding, codes);
    let l1 = 0;
    for (let i = 0; i < codes.length; i++) l1 += Math.abs(codes[i]!);
    this.rowScales[row] = scale;
    this.largestRowScale = Math.max(this.largestRowScale, scale);
    this.largestRowL1 = Math.max(this.largestRowL1, l1 * scale);
  }

  copyRow(from: number, to: number): void {
    const floats = this.stride * 4;
    new Uint8Array(this.memory.buffer).copyWithin(this.matrixOffset + to * floats, this.matrixOffset + from * floats, this.matrixOffset + (from + 1) * floats);
    new Uint8Array(this.memory.buffer).copyWithin(this.codesOffset + to * this.stride, this.codesOffset + from * this.stride, this.codesOffset + (from + 1) * this.stride);
    this.rowScales[to] = this.rowScales[from]!;
  }

  /** Exact scores of the query against the first `rows` rows. Valid until the next call. */
  scores(query: Float32Array, rows: number): Float32Array {
    const padded = new Float32Array(this.memory.buffer, 0, this.stride);
    padded.fill(0);
    padded.set(query);
    if (rows > 0) this.exactOf(this.matrixOffset, 0, this.scoresOffset, rows, this.stride * 4);
    return new Float32Array(this.memory.buffer, this.scoresOffset, rows);
  }

  /**
   * Approximate scores from the int8 shadow, each within `error` of the exact one:
   * |a.q - a'.q'| <= |(a - a').q| + |a'.(q - q')| <= (rowScale |q|_1 + queryScale |a'|_1) / 2.
   */
  coarseScores(query: Float32Array, rows: number): { scores: Float32Array; error: number } {
    const codes = new Int16Array(this.memory.buffer, this.queryI16Offset, this.stride);
    codes.fill(0);
    const queryScale = quantise(query, codes);
    let queryL1 = 0;
    for (let i = 0; i < query.length; i++) queryL1 += Math.abs(query[i]!);
    if (rows > 0) this.coarseOf(this.codesOffset, this.queryI16Offset, this.dotsOffset, rows, this.stride);
    const dots = new Int32Array(this.memory.buffer, this.dotsOffset, rows);
    const scores = this.coarse.subarray(0, rows);
    for (let row = 0; row < rows; row++) scores[row] = dots[row]! * this.rowScales[row]! * queryScale;
    const error = (this.largestRowScale * queryL1 + queryScale * this.largestRowL1) / 2 + ROUNDING_SLACK;
    return { scores, error };
  }

  /** The exact score of one row. */
  dot(query: Float32Array, row: number): number {
    const values = this.row(row);
    let sum = 0;
    for (let i = 0; i < values.length; i++) sum += values[i]! * query[i]!;
    return sum;
  }

  private matrix(): Float32Array {
    return new Float32Array(this.memory.buffer, this.matrixOffset, this.capacity * this.stride);
  }

  private codes(): Int8Array {
    return new Int8Array(this.memory.buffer, this.codesOffset, this.capacity * this.stride);
  }
}
