/** Reads a face-api weights manifest and its binary shards into named float32 tensors (tfjs layout, dequantised). */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}

interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: "float32";
  quantization?: { dtype: "uint8" | "uint16"; scale: number; min: number };
}

interface ManifestGroup {
  paths: string[];
  weights: ManifestEntry[];
}

/** The folder of face-api's model files inside node_modules. */
export const FACE_API_MODEL_DIR = join(dirname(Bun.resolveSync("@vladmandic/face-api/package.json", import.meta.dir)), "model");

/** Weights of one face-api model, e.g. "face_recognition_model". */
export class FaceApiWeights {
  private constructor(private readonly tensors: Map<string, WeightTensor>) {}

  static read(model: string, dir = FACE_API_MODEL_DIR): FaceApiWeights {
    const groups = JSON.parse(readFileSync(join(dir, `${model}-weights_manifest.json`), "utf8")) as ManifestGroup[];
    const tensors = new Map<string, WeightTensor>();
    for (const group of groups) {
      const bytes = Buffer.concat(group.paths.map((path) => readFileSync(join(dir, path))));
      let offset = 0;
      for (const entry of group.weights) {
        const size = entry.shape.reduce((a, b) => a * b, 1);
        const { data, byteLength } = decode(entry, size, bytes, offset);
        tensors.set(entry.name, { shape: entry.shape, data });
        offset += byteLength;
      }
      if (offset !== bytes.byteLength) throw new Error(`${model}: ${bytes.byteLength - offset} bytes left after the last weight`);
    }
    return new FaceApiWeights(tensors);
  }

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  get(name: string): WeightTensor {
    const tensor = this.tensors.get(name);
    if (!tensor) throw new Error(`weight ${name} is missing`);
    return tensor;
  }
}

/** Each weight occupies its own byte size: quantised ones 1 or 2 bytes per value (value = q * scale + min), float32 ones 4. */
function decode(entry: ManifestEntry, size: number, bytes: Buffer, offset: number): { data: Float32Array; byteLength: number } {
  const data = new Float32Array(size);
  const quantization = entry.quantization;
  if (!quantization) {
    const view = new DataView(bytes.buffer, bytes.byteOffset + offset, size * 4);
    for (let i = 0; i < size; i++) data[i] = view.getFloat32(i * 4, true);
    return { data, byteLength: size * 4 };
  }
  const { scale, min } = quantization;
  if (quantization.dtype === "uint8") {
    for (let i = 0; i < size; i++) data[i] = bytes[offset + i]! * scale + min;
    return { data, byteLength: size };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, size * 2);
  for (let i = 0; i < size; i++) data[i] = view.getUint16(i * 2, true) * scale + min;
  return { data, byteLength: size * 2 };
}
