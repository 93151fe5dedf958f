/**
 * Dot products of one query with every row of a matrix, in WebAssembly SIMD (f32x4, two accumulators).
 * The module is a few dozen bytes assembled here, so nothing is fetched or built. Rows are padded to a
 * multiple of 8 floats; the matrix, the query and the scores all live in the module's memory.
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

// Opcodes used below.
const I32 = 0x7f, V128 = 0x7b;
const LOCAL_GET = 0x20, LOCAL_SET = 0x21, LOCAL_TEE = 0x22, I32_CONST = 0x41, I32_ADD = 0x6a, I32_SUB = 0x6b;
const I32_LT_U = 0x49, I32_EQZ = 0x45, BR_IF = 0x0d, BLOCK = 0x02, LOOP = 0x03, END = 0x0b, VOID = 0x40;
const F32_ADD = 0x92, F32_STORE = [0x38, 0x02, 0x00];
const SIMD = 0xfd;
const V128_ZERO = [SIMD, 0x0c, ...new Array(16).fill(0)];
const F32X4_ADD = [SIMD, ...leb128(228)];
const F32X4_MUL = [SIMD, ...leb128(230)];
const extractLane = (lane: number) => [SIMD, 0x1f, lane];

// scores(matrix, query, out, rows, rowBytes): out[r] = dot(matrix row r, query). Parameters 0-4; locals j=5, a=6, b=7.
const [MATRIX, QUERY, OUT, ROWS, ROW_BYTES, J, A, B] = [0, 1, 2, 3, 4, 5, 6, 7];
const get = (local: number) => [LOCAL_GET, local];
const loadAt = (base: number, extra: number) => [...get(base), ...get(J), I32_ADD, SIMD, 0x00, 0x00, ...leb128(extra)];
const body = [
  ...vector([[1, I32], [2, V128]]),
  BLOCK, VOID,
  ...get(ROWS), I32_EQZ, BR_IF, 0,
  LOOP, VOID,
  ...V128_ZERO, LOCAL_SET, A,
  ...V128_ZERO, LOCAL_SET, B,
  I32_CONST, 0, LOCAL_SET, J,
  LOOP, VOID,
  ...get(A), ...loadAt(MATRIX, 0), ...loadAt(QUERY, 0), ...F32X4_MUL, ...F32X4_ADD, LOCAL_SET, A,
  ...get(B), ...loadAt(MATRIX, 16), ...loadAt(QUERY, 16), ...F32X4_MUL, ...F32X4_ADD, LOCAL_SET, B,
  ...get(J), I32_CONST, 32, I32_ADD, LOCAL_TEE, J, ...get(ROW_BYTES), I32_LT_U, BR_IF, 0,
  END,
  ...get(A), ...get(B), ...F32X4_ADD, LOCAL_SET, A,
  ...get(OUT),
  ...get(A), ...extractLane(0), ...get(A), ...extractLane(1), F32_ADD, ...get(A), ...extractLane(2), F32_ADD, ...get(A), ...extractLane(3), F32_ADD,
  ...F32_STORE,
  ...get(OUT), I32_CONST, 4, I32_ADD, LOCAL_SET, OUT,
  ...get(MATRIX), ...get(ROW_BYTES), I32_ADD, LOCAL_SET, MATRIX,
  ...get(ROWS), I32_CONST, 1, I32_SUB, LOCAL_TEE, ROWS, BR_IF, 0,
  END,
  END,
  END,
];

const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, vector([[0x60, ...vector([[I32], [I32], [I32], [I32], [I32]]), 0x00]])),
  ...section(3, vector([[0x00]])),
  ...section(5, vector([[0x00, 0x01]])),
  ...section(7, vector([[...name("memory"), 0x02, 0x00], [...name("scores"), 0x00, 0x00]])),
  ...section(10, vector([[...leb128(body.length), ...body]])),
]);

const compiled = new WebAssembly.Module(MODULE);

type ScoresFunction = (matrix: number, query: number, out: number, rows: number, rowBytes: number) => void;

/** A matrix of `rows` x `dimensions` floats with room to grow, and the query and score buffers beside it. */
export class DotKernel {
  readonly stride: number;
  private readonly memory: WebAssembly.Memory;
  private readonly scoresOf: ScoresFunction;
  private capacity = 0;

  constructor(readonly dimensions: number, capacity: number) {
    this.stride = Math.ceil(dimensions / 8) * 8;
    const instance = new WebAssembly.Instance(compiled);
    this.memory = instance.exports.memory as WebAssembly.Memory;
    this.scoresOf = instance.exports.scores as ScoresFunction;
    this.reserve(capacity);
  }

  /** Layout: query (stride floats), scores (capacity floats), matrix (capacity x stride floats). */
  private get queryOffset(): number {
    return 0;
  }
  private get scoresOffset(): number {
    return this.stride * 4;
  }
  private get matrixOffset(): number {
    return this.scoresOffset + this.capacity * 4;
  }

  /** Makes room for `rows` rows, keeping the ones held. */
  reserve(rows: number): void {
    if (rows <= this.capacity) return;
    const held = this.capacity > 0 ? this.matrix(this.capacity).slice() : new Float32Array();
    this.capacity = Math.max(rows, this.capacity * 2, 16);
    const needed = this.matrixOffset + this.capacity * this.stride * 4;
    const missing = Math.ceil((needed - this.memory.buffer.byteLength) / PAGE_BYTES);
    if (missing > 0) this.memory.grow(missing);
    this.matrix(this.capacity).set(held);
  }

  /** The first `rows` rows of the matrix (each `stride` floats, padding zero). Valid until the next reserve(). */
  matrix(rows: number): Float32Array {
    return new Float32Array(this.memory.buffer, this.matrixOffset, rows * this.stride);
  }

  /** Scores of the query against the first `rows` rows. Valid until the next call. */
  scores(query: Float32Array, rows: number): Float32Array {
    const padded = new Float32Array(this.memory.buffer, this.queryOffset, this.stride);
    padded.fill(0);
    padded.set(query);
    if (rows > 0) this.scoresOf(this.matrixOffset, this.queryOffset, this.scoresOffset, rows, this.stride * 4);
    return new Float32Array(this.memory.buffer, this.scoresOffset, rows);
  }
}
