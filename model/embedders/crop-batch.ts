/** Packs aligned crops into one NHWC float32 batch for an embedder, refusing crops of the wrong size. */
import type { RgbImage } from "../types.ts";

/** `pixel` maps each 0..255 channel value (kept as is by default, for graphs that normalise themselves). */
export function cropBatch(embedder: string, crops: RgbImage[], size: number, pixel?: (value: number) => number): Float32Array {
  const pixelsPerCrop = size * size * 3;
  const batch = new Float32Array(crops.length * pixelsPerCrop);
  crops.forEach((crop, i) => {
    if (crop.width !== size || crop.height !== size) throw new Error(`${embedder} takes ${size}x${size} crops, got ${crop.width}x${crop.height}`);
    if (!pixel) return batch.set(crop.data, i * pixelsPerCrop);
    const offset = i * pixelsPerCrop;
    for (let p = 0; p < pixelsPerCrop; p++) batch[offset + p] = pixel(crop.data[p]!);
  });
  return batch;
}
