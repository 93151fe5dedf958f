/**
 * How usable a face is, measured cheaply on its aligned crop: sharpness from the variance of the Laplacian of the
 * luma, brightness from its mean, size from the detected box. Enough to refuse a blurred, dark or tiny face.
 */
import type { Box, FaceQuality, RgbImage } from "./types.ts";

/** Laplacian variance at which sharpness reads 0.5 (an in-focus 150 px face crop is well above it; a blurred one below). */
const SHARPNESS_HALF_VARIANCE = 100;

export function faceQuality(crop: RgbImage, box: Box): FaceQuality {
  const { width, height, data } = crop;
  const luma = new Float32Array(width * height);
  let sum = 0;
  for (let i = 0; i < luma.length; i++) {
    const value = 0.299 * data[i * 3]! + 0.587 * data[i * 3 + 1]! + 0.114 * data[i * 3 + 2]!;
    luma[i] = value;
    sum += value;
  }
  let lapSum = 0;
  let lapSquares = 0;
  let count = 0;
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      const laplacian = luma[i - 1]! + luma[i + 1]! + luma[i - width]! + luma[i + width]! - 4 * luma[i]!;
      lapSum += laplacian;
      lapSquares += laplacian * laplacian;
      count++;
    }
  }
  const mean = count > 0 ? lapSum / count : 0;
  const variance = count > 0 ? lapSquares / count - mean * mean : 0;
  return {
    sharpness: variance / (variance + SHARPNESS_HALF_VARIANCE),
    brightness: luma.length > 0 ? sum / luma.length / 255 : 0,
    size: Math.min(box.width, box.height),
  };
}
