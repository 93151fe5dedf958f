/**
 * Dot products of one query with every row of a matrix, in WebAssembly SIMD, assembled here (a few hundred
 * bytes, nothing fetched or built). Two kernels over the same rows:
 * - `exact`: float32 rows (f32x4, two accumulators);
 * - `coarse`: the rows quantised to int8 (one scale per row) against the query quantised to int16-held int8
 *   (i32x4.dot_i16x8_s), a quarter of the memory traffic, for a first pass whose error has a known bound; it writes
 *   the scaled score (integer dot x row scale x query scale), so no pass over the rows is left to JavaScript.
 * Rows are padded to a multiple of 16 values. The rows are split into blocks of at most `blockRows`, each block in a
 * module instance of its own (matrices, query and results in its memory), so a gallery is not bound by one wasm
 * memory's 4 GiB: 10M 128-d faces are 10 blocks of 650 MB.
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
const I32_EQZ = 0x45, BR_IF = 0x0d, BLOCK = 0x02, LOOP = 0x03, END = 0x0b, VOID = 0x40;
const F32_ADD = 0x92, F32_MUL = 0x94, F32_CONVERT_I32_S = 0xb2, F32_LOAD = [0x2a, 0x02, 0x00], F32_STORE = [0x38, 0x02, 0x00];
const SIMD = 0xfd;
const simd = (opcode: number) => [SIMD, ...leb128(opcode)];
const V128_ZERO = [SIMD, 0x0c, ...new Array(16).fill(0)];
const F32X4_ADD = simd(228), F32X4_MUL = simd(230), I32X4_ADD = simd(174), I32X4_DOT_I16X8 = simd(186);
const I16X8_EXTEND_LOW_I8X16 = simd(135), I16X8_EXTEND_HIGH_I8X16 = simd(136);
const f32Lane = (lane: number) => [SIMD, 0x1f, lane];
const i32Lane = (lane: number) => [SIMD, 0x1b, lane];

// Both kernels: (matrix, query, out, rows, rowBytes) -> void, out[r] = dot(matrix row r, query); the coarse one finds
// the row's scale in out[r] and the query's scale just after the int16 query (at query + 2 x rowBytes). Each is built
// for one row length, its loop over a row unrolled (constant offsets, no counter).
// Parameters 0-4; locals a = 5, b = 6, row = 7.
const [MATRIX, QUERY, OUT, ROWS, ROW_BYTES, A, B, ROW] = [0, 1, 2, 3, 4, 5, 6, 7];
const get = (local: number) => [LOCAL_GET, local];
const load = (offset: number) => [SIMD, 0x00, 0x00, ...leb128(offset)];
const at = (base: number, offset: number) => [...get(base), ...load(offset)];

/** The loop over rows, around `body` (one row, accumulating into A and B) and `store` (A, B -> out). */
function kernel(body: number[], store: number[]): number[] {
  return [
    ...vector([[3, V128]]),
    BLOCK, VOID,
    ...get(ROWS), I32_EQZ, BR_IF, 0,
    LOOP, VOID,
    ...V128_ZERO, LOCAL_SET, A,
    ...V128_ZERO, LOCAL_SET, B,
    ...body,
    ...get(OUT), ...store,
    ...get(OUT), I32_CONST, 4, I32_ADD, LOCAL_SET, OUT,
    ...get(MATRIX), ...get(ROW_BYTES), I32_ADD, LOCAL_SET, MATRIX,
    ...get(ROWS), I32_CONST, 1, I32_SUB, LOCAL_TEE, ROWS, BR_IF, 0,
    END,
    END,
    END,
  ];
}

/** The module for rows of `stride` values (a multiple of 16). */
function moduleFor(stride: number): WebAssembly.Module {
  const exactBody: number[] = [];
  // Float32: chunks 0, 2, 4... into A, 1, 3, 5... into B, then A + B and its lanes in order.
  for (let offset = 0; offset < stride * 4; offset += 32) {
    exactBody.push(...get(A), ...at(MATRIX, offset), ...at(QUERY, offset), ...F32X4_MUL, ...F32X4_ADD, LOCAL_SET, A);
    exactBody.push(...get(B), ...at(MATRIX, offset + 16), ...at(QUERY, offset + 16), ...F32X4_MUL, ...F32X4_ADD, LOCAL_SET, B);
  }
  const exact = kernel(exactBody, [
    ...get(A), ...get(B), ...F32X4_ADD, LOCAL_SET, A,
    ...get(A), ...f32Lane(0), ...get(A), ...f32Lane(1), F32_ADD, ...get(A), ...f32Lane(2), F32_ADD, ...get(A), ...f32Lane(3), F32_ADD,
    ...F32_STORE,
  ]);
  // int8 rows against the int16 query, which sits at twice the row's byte offset: 16 row values meet 32 query bytes.
  const coarseBody: number[] = [];
  for (let offset = 0; offset < stride; offset += 16) {
    coarseBody.push(...at(MATRIX, offset), LOCAL_SET, ROW);
    coarseBody.push(...get(A), ...get(ROW), ...I16X8_EXTEND_LOW_I8X16, ...at(QUERY, 2 * offset), ...I32X4_DOT_I16X8, ...I32X4_ADD, LOCAL_SET, A);
    coarseBody.push(...get(B), ...get(ROW), ...I16X8_EXTEND_HIGH_I8X16, ...at(QUERY, 2 * offset + 16), ...I32X4_DOT_I16X8, ...I32X4_ADD, LOCAL_SET, B);
  }
  const coarse = kernel(coarseBody, [
    ...get(A), ...get(B), ...I32X4_ADD, LOCAL_SET, A,
    ...get(A), ...i32Lane(0), ...get(A), ...i32Lane(1), I32_ADD, ...get(A), ...i32Lane(2), I32_ADD, ...get(A), ...i32Lane(3), I32_ADD,
    F32_CONVERT_I32_S, ...get(OUT), ...F32_LOAD, F32_MUL,
    ...get(QUERY), ...get(ROW_BYTES), ...get(ROW_BYTES), I32_ADD, I32_ADD, ...F32_LOAD, F32_MUL,
    ...F32_STORE,
  ]);
  return new WebAssembly.Module(
    new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      ...section(1, vector([[0x60, ...vector([[I32], [I32], [I32], [I32], [I32]]), 0x00]])),
      ...section(3, vector([[0x00], [0x00]])),
      ...section(5, vector([[0x00, 0x01]])),
      ...section(7, vector([[...name("memory"), 0x02, 0x00], [...name("exact"), 0x00, 0x00], [...name("coarse"), 0x00, 0x01]])),
      ...section(10, vector([[...leb128(exact.length), ...exact], [...leb128(coarse.length), ...coarse]])),
    ]),
  );
}

const modules = new Map<number, WebAssembly.Module>();
function compiledFor(stride: number): WebAssembly.Module {
  let compiled = modules.get(stride);
  if (!compiled) modules.set(stride, (compiled = moduleFor(stride)));
  return compiled;
}

type KernelFunction = (matrix: number, query: number, out: number, rows: number, rowBytes: number) => void;

/** int8 quantisation with one scale per vector, into `codes` from `at`: value ~= code * scale. */
function quantise(vector: Float32Array, codes: Int8Array | Int16Array, at = 0): number {
  let largest = 0;
  for (let i = 0; i < vector.length; i++) {
    const magnitude = Math.abs(vector[i]!);
    if (magnitude > largest) largest = magnitude;
  }
  const scale = largest > 0 ? largest / 127 : 1;
  for (let i = 0; i < vector.length; i++) codes[at + i] = Math.round(vector[i]! / scale);
  return scale;
}

/**
 * Float rounding, relative to |row| |query|: the exact kernel's float32 sums (a chain of stride / 8 additions per lane,
 * then 3) stay within (stride / 8 + 3) x 2^-24 x sum |a_i q_i| <= ~2e-6 |a| |q| of the real dot product for 128-d, the
 * coarse score's three roundings within 2e-7 of its real value; 1e-5 covers both with room.
 */
const ROUNDING_SLACK = 1e-5;

/** Rows per block: 2^20 rows of 128-d take 650 MB of one module's memory, well inside wasm's 4 GiB. */
export const BLOCK_ROWS = 1 << 20;
/** Rows from which a block grows by a quarter rather than doubling. */
const GROW_BY_QUARTER_ABOVE = 1 << 16;
/** What one block's memory may take: wasm's 4 GiB, less room for the header. */
const BLOCK_BYTES = 2 ** 32 - 2 ** 24;

/** One module instance: up to `blockRows` rows, their int8 shadow and scales, and the query and result buffers. */
class Block {
  readonly memory: WebAssembly.Memory;
  readonly exactOf: KernelFunction;
  readonly coarseOf: KernelFunction;
  capacity = 0;
  /** Upper bounds over all rows this block ever held (removal keeps them valid). */
  largestRowScale = 0;
  largestRowL1 = 0;
  largestRowL2 = 0;

  constructor(private readonly stride: number) {
    const instance = new WebAssembly.Instance(compiledFor(stride));
    this.memory = instance.exports.memory as WebAssembly.Memory;
    this.exactOf = instance.exports.exact as KernelFunction;
    this.coarseOf = instance.exports.coarse as KernelFunction;
  }

  // Layout in bytes: float query | int16 query | query scale, one exact score | exact scores | coarse scores | row
  // scales | int8 matrix | float matrix. The float matrix last: when the block grows, the pages its rows leave
  // behind are the int8 matrix's next rows, where with the int8 matrix last they were the float matrix's unused rows
  // (a quarter of the rows' floats, 128 MB at a million faces, resident and unused after the first enrollment).
  get queryI16Offset(): number {
    return this.stride * 4;
  }
  get queryScaleOffset(): number {
    return this.stride * 6;
  }
  get oneScoreOffset(): number {
    return this.queryScaleOffset + 4;
  }
  get scoresOffset(): number {
    return this.queryScaleOffset + 16;
  }
  get coarseOffset(): number {
    return this.scoresOffset + this.capacity * 4;
  }
  get scalesOffset(): number {
    return this.coarseOffset + this.capacity * 4;
  }
  get codesOffset(): number {
    return this.scalesOffset + this.capacity * 4;
  }
  get matrixOffset(): number {
    return this.codesOffset + this.capacity * this.stride;
  }

  /**
   * Makes room for `capacity` rows, keeping the ones held: moved up inside the grown memory (every region starts at
   * or after where it did, so the highest moves first), not copied out and back, which at a million rows made
   * gigabytes of garbage.
   */
  grow(capacity: number): void {
    if (capacity <= this.capacity) return;
    const held = this.capacity;
    const from = { matrix: this.matrixOffset, codes: this.codesOffset, scales: this.scalesOffset };
    const needed = this.stride * 6 + 16 + capacity * (12 + this.stride * 5);
    const missing = Math.ceil((needed - this.memory.buffer.byteLength) / PAGE_BYTES);
    if (missing > 0) this.memory.grow(missing);
    this.capacity = capacity;
    const bytes = new Uint8Array(this.memory.buffer);
    bytes.copyWithin(this.matrixOffset, from.matrix, from.matrix + held * this.stride * 4);
    bytes.copyWithin(this.codesOffset, from.codes, from.codes + held * this.stride);
    bytes.copyWithin(this.scalesOffset, from.scales, from.scales + held * 4);
  }

  private view = new Float32Array();
  private int8View = new Int8Array();

  /** All of the memory as floats; recreated only after the memory grew. */
  floats(): Float32Array {
    if (this.view.buffer !== this.memory.buffer) this.view = new Float32Array(this.memory.buffer);
    return this.view;
  }

  /** All of the memory as int8; recreated only after the memory grew. */
  int8s(): Int8Array {
    if (this.int8View.buffer !== this.memory.buffer) this.int8View = new Int8Array(this.memory.buffer);
    return this.int8View;
  }

  setQuery(query: Float32Array): void {
    const floats = this.floats();
    floats.fill(0, 0, this.stride);
    floats.set(query);
  }

  /** Exact scores of the query against the first `rows` rows. Valid until the next call. */
  scores(query: Float32Array, rows: number): Float32Array {
    this.setQuery(query);
    if (rows > 0) this.exactOf(this.matrixOffset, 0, this.scoresOffset, rows, this.stride * 4);
    return new Float32Array(this.memory.buffer, this.scoresOffset, rows);
  }

  /** The exact score of row `at` against the query set last. */
  dot(at: number): number {
    this.exactOf(this.matrixOffset + at * this.stride * 4, 0, this.oneScoreOffset, 1, this.stride * 4);
    return this.floats()[this.oneScoreOffset / 4]!;
  }

  matrix(): Float32Array {
    return new Float32Array(this.memory.buffer, this.matrixOffset, this.capacity * this.stride);
  }
  codes(): Int8Array {
    return new Int8Array(this.memory.buffer, this.codesOffset, this.capacity * this.stride);
  }
  scales(): Float32Array {
    return new Float32Array(this.memory.buffer, this.scalesOffset, this.capacity);
  }
}

/** A matrix of `rows` x `dimensions` floats with room to grow, in blocks of `blockRows` rows, and its int8 shadow. */
export class DotKernel {
  /** Values per row, padding included. */
  readonly stride: number;
  private readonly blocks: Block[] = [];
  private capacity = 0;

  /** Rows per block: as asked, fewer when that many rows of this length would not fit in one wasm memory. */
  readonly blockRows: number;

  constructor(readonly dimensions: number, capacity: number, blockRows = BLOCK_ROWS) {
    if (!Number.isInteger(blockRows) || blockRows < 1) throw new Error(`invalid block rows ${blockRows}`);
    this.stride = Math.ceil(dimensions / 16) * 16;
    this.blockRows = Math.min(blockRows, Math.floor(BLOCK_BYTES / (12 + 5 * this.stride)));
    this.reserve(capacity);
  }

  /** Makes room for `rows` rows, keeping the ones held: the last block doubles up to `blockRows`, then blocks are added. */
  reserve(rows: number): void {
    while (this.capacity < rows) {
      let last = this.blocks[this.blocks.length - 1];
      if (!last || last.capacity === this.blockRows) this.blocks.push((last = new Block(this.stride)));
      const before = last.capacity;
      const wanted = rows - (this.capacity - before);
      // Doubling while small; by a quarter once large, where a doubling would leave hundreds of megabytes unused.
      last.grow(Math.min(this.blockRows, Math.max(wanted, before < GROW_BY_QUARTER_ABOVE ? before * 2 : Math.ceil(before * 1.25), 16)));
      this.capacity += last.capacity - before;
    }
  }

  /** Row `row` of the float matrix (padding excluded). Valid until the next reserve(). */
  row(row: number): Float32Array {
    const [block, at] = this.locate(row);
    return new Float32Array(block.memory.buffer, block.matrixOffset + at * this.stride * 4, this.dimensions);
  }

  setRow(row: number, embedding: Float32Array): void {
    const [block, at] = this.locate(row);
    // Through views of the whole memory, made once: a view a row was most of the cost of a million-face load.
    const floats = block.floats();
    const start = block.matrixOffset / 4 + at * this.stride;
    floats.set(embedding, start);
    // The padding too: after a reserve() it holds whatever bytes lay there, and NaN x 0 would poison the exact score.
    floats.fill(0, start + embedding.length, start + this.stride);
    const codes = block.int8s();
    const codesStart = block.codesOffset + at * this.stride;
    codes.fill(0, codesStart + embedding.length, codesStart + this.stride);
    const scale = quantise(embedding, codes, codesStart);
    let l1 = 0;
    let squares = 0;
    for (let i = 0; i < embedding.length; i++) {
      l1 += Math.abs(codes[codesStart + i]!);
      squares += embedding[i]! * embedding[i]!;
    }
    floats[block.scalesOffset / 4 + at] = scale;
    block.largestRowScale = Math.max(block.largestRowScale, scale);
    block.largestRowL1 = Math.max(block.largestRowL1, l1 * scale);
    block.largestRowL2 = Math.max(block.largestRowL2, Math.sqrt(squares));
  }

  copyRow(from: number, to: number): void {
    const [source, fromAt] = this.locate(from);
    const [target, toAt] = this.locate(to);
    const floats = this.stride * 4;
    new Uint8Array(target.memory.buffer, target.matrixOffset + toAt * floats, floats).set(new Uint8Array(source.memory.buffer, source.matrixOffset + fromAt * floats, floats));
    new Int8Array(target.memory.buffer, target.codesOffset + toAt * this.stride, this.stride).set(new Int8Array(source.memory.buffer, source.codesOffset + fromAt * this.stride, this.stride));
    target.scales()[toAt] = source.scales()[fromAt]!;
    target.largestRowScale = Math.max(target.largestRowScale, source.largestRowScale);
    target.largestRowL1 = Math.max(target.largestRowL1, source.largestRowL1);
    target.largestRowL2 = Math.max(target.largestRowL2, source.largestRowL2);
  }

  /** Exact scores of the query against the first `rows` rows, one array per block. Valid until the next call. */
  scores(query: Float32Array, rows: number): Float32Array[] {
    return this.eachBlock(rows, (block, count) => block.scores(query, count));
  }

  /** Exact scores of the query against the first `rows` rows of block `block`. Valid until the next call. */
  blockScores(query: Float32Array, block: number, rows: number): Float32Array {
    return this.blocks[block]!.scores(query, rows);
  }

  /**
   * Approximate scores from the int8 shadow, one array per block, each score within `error` of the exact one:
   * |a.q - a'.q'| <= |(a - a').q| + |a'.(q - q')| <= (rowScale |q|_1 + queryScale |a'|_1) / 2, as every code is its
   * value rounded to the nearest multiple of its scale; plus the float rounding of both scores.
   */
  coarseScores(query: Float32Array, rows: number): { blocks: Float32Array[]; error: number } {
    const codes = new Int16Array(this.stride);
    const queryScale = quantise(query, codes);
    let queryL1 = 0;
    let querySquares = 0;
    for (let i = 0; i < query.length; i++) {
      queryL1 += Math.abs(query[i]!);
      querySquares += query[i]! * query[i]!;
    }
    let error = 0;
    const blocks = this.eachBlock(rows, (block, count) => {
      new Int16Array(block.memory.buffer, block.queryI16Offset, this.stride).set(codes);
      new Float32Array(block.memory.buffer, block.queryScaleOffset, 1)[0] = queryScale;
      // The kernel multiplies each row's scale, found where its score goes, by the integer dot product.
      new Uint8Array(block.memory.buffer).copyWithin(block.coarseOffset, block.scalesOffset, block.scalesOffset + count * 4);
      if (count > 0) block.coarseOf(block.codesOffset, block.queryI16Offset, block.coarseOffset, count, this.stride);
      const rounding = ROUNDING_SLACK * block.largestRowL2 * Math.sqrt(querySquares);
      error = Math.max(error, (block.largestRowScale * queryL1 + queryScale * block.largestRowL1) / 2 + rounding);
      return new Float32Array(block.memory.buffer, block.coarseOffset, count);
    });
    return { blocks, error };
  }

  /** The exact score of one row, by the same kernel (and so the same float rounding) as `scores`. */
  dot(query: Float32Array, row: number): number {
    const [block, at] = this.locate(row);
    block.setQuery(query);
    return block.dot(at);
  }

  /** The exact scores of some rows of block `block` (its rows numbered from 0), as `dot` would give them one by one. */
  blockDots(query: Float32Array, block: number, rows: Int32Array): Float32Array {
    const held = this.blocks[block]!;
    held.setQuery(query);
    const scores = new Float32Array(rows.length);
    for (let i = 0; i < rows.length; i++) scores[i] = held.dot(rows[i]!);
    return scores;
  }

  private locate(row: number): [Block, number] {
    const block = this.blocks[Math.floor(row / this.blockRows)];
    const at = row % this.blockRows;
    if (!block || at >= block.capacity || row < 0) throw new RangeError(`row ${row} is outside the kernel's ${this.capacity} rows`);
    return [block, at];
  }

  private eachBlock(rows: number, each: (block: Block, count: number) => Float32Array): Float32Array[] {
    const out: Float32Array[] = [];
    for (let b = 0; b * this.blockRows < rows; b++) out.push(each(this.blocks[b]!, Math.min(this.blockRows, rows - b * this.blockRows)));
    return out;
  }
}
