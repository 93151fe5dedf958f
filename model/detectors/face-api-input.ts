/** What face-api's detectors share: the image padded to a square at the bottom/right, boxes as fractions of that square. */
import { sampleSquare } from "../face-geometry.ts";
import type { Box, DetectedFace, Point, RgbImage } from "../types.ts";
import type { Corners } from "./box-overlap.ts";

/** The image padded with black at the bottom or right to a square of side max(width, height), resized to size x size. */
export function paddedSquare(image: RgbImage, size: number): { pixels: Float32Array; side: number } {
  const side = Math.max(image.width, image.height);
  return { pixels: sampleSquare(image, { centreX: side / 2, centreY: side / 2, side }, size), side };
}

/**
 * A face from a box given as fractions of the padded square. The box is clipped to the image and, like the points, put
 * integers at pixel centres (as align.ts does); the detector has no keypoints, so `coarsePoints` (fractions of the box)
 * place the five alignment points.
 */
export function faceInSquare(box: Corners & { score: number }, side: number, image: RgbImage, coarsePoints: readonly Point[]): DetectedFace {
  const left = Math.max(-0.5, box.x1 * side - 0.5);
  const top = Math.max(-0.5, box.y1 * side - 0.5);
  const right = Math.min(image.width - 0.5, box.x2 * side - 0.5);
  const bottom = Math.min(image.height - 0.5, box.y2 * side - 0.5);
  const clipped: Box = { x: left, y: top, width: right - left, height: bottom - top };
  const landmarks = coarsePoints.map(([x, y]) => [left + x * clipped.width, top + y * clipped.height] as const);
  return { box: clipped, score: box.score, landmarks, wholeImage: false };
}
