/** Decodes a TensorFlow.js weights manifest and its binary shards into named tensors (dequantised). */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export type TfjsDtype = "float32" | "int32";

export interface TfjsWeight {
  name: string;
  shape: number[];
  dtype: TfjsDtype;
  /** float32 weights dequantised; int32 weights (shapes, paddings, axes) as stored. */
  data: Float32Array | Int32Array;
}

export interface WeightsManifestEntry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: "uint8" | "uint16" | "float16"; scale?: number; min?: number };
}

export interface WeightsManifestGroup {
  paths: string[];
  weights: WeightsManifestEntry[];
}

/** Reads every group's shards from `dir` (concatenated in order) and decodes the weights they hold. */
export function readWeights(dir: string, groups: WeightsManifestGroup[]): Map<string, TfjsWeight> {
  const weights = new Map<string, TfjsWeight>();
  for (const group of groups) {
    const bytes = Buffer.concat(group.paths.map((path) => readFileSync(join(dir, path))));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let offset = 0;
    for (const entry of group.weights) {
      const { weight, byteLength } = decodeWeight(entry, view, offset);
      weights.set(entry.name, weight);
      offset += byteLength;
    }
    if (offset !== bytes.byteLength) throw new Error(`${group.paths}: ${bytes.byteLength - offset} bytes left after the last weight`);
  }
  return weights;
}

/** Each weight occupies its own byte size: quantised ones 1 or 2 bytes per value, plain float32/int32 ones 4. */
export function decodeWeight(entry: WeightsManifestEntry, view: DataView, offset: number): { weight: TfjsWeight; byteLength: number } {
  const size = entry.shape.reduce((a, b) => a * b, 1);
  const { name, shape } = entry;
  const quantization = entry.quantization;
  if (entry.dtype === "int32" && !quantization) {
    const data = new Int32Array(size);
    for (let i = 0; i < size; i++) data[i] = view.getInt32(offset + i * 4, true);
    return { weight: { name, shape, dtype: "int32", data }, byteLength: size * 4 };
  }
  if (entry.dtype !== "float32") throw new Error(`weight ${name}: dtype ${entry.dtype} is not supported`);
  const data = new Float32Array(size);
  if (!quantization) {
    for (let i = 0; i < size; i++) data[i] = view.getFloat32(offset + i * 4, true);
    return { weight: { name, shape, dtype: "float32", data }, byteLength: size * 4 };
  }
  if (quantization.dtype === "float16") {
    for (let i = 0; i < size; i++) data[i] = halfToFloat(view.getUint16(offset + i * 2, true));
    return { weight: { name, shape, dtype: "float32", data }, byteLength: size * 2 };
  }
  // Affine quantisation: value = q * scale + min.
  const scale = quantization.scale ?? 1;
  const min = quantization.min ?? 0;
  if (quantization.dtype === "uint8") {
    for (let i = 0; i < size; i++) data[i] = view.getUint8(offset + i) * scale + min;
    return { weight: { name, shape, dtype: "float32", data }, byteLength: size };
  }
  for (let i = 0; i < size; i++) data[i] = view.getUint16(offset + i * 2, true) * scale + min;
  return { weight: { name, shape, dtype: "float32", data }, byteLength: size * 2 };
}

/** IEEE 754 binary16 bits to a number (subnormals, infinities and NaN included). */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}
