/** Overlap of axis-aligned boxes given by their corners, and non-maximum suppression. */
export interface Corners {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** Intersection over union; 0 for disjoint boxes. */
export function iou(a: Corners, b: Corners): number {
  const width = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const height = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (width <= 0 || height <= 0) return 0;
  const intersection = width * height;
  const area = (box: Corners) => (box.x2 - box.x1) * (box.y2 - box.y1);
  return intersection / (area(a) + area(b) - intersection);
}

/** Greedy non-maximum suppression: best first, dropping boxes that overlap a kept one by more than `iouThreshold`. */
export function suppress<T extends Corners & { score: number }>(boxes: readonly T[], iouThreshold: number, maxBoxes: number): T[] {
  const kept: T[] = [];
  for (const box of [...boxes].sort((a, b) => b.score - a.score)) {
    if (kept.length === maxBoxes) break;
    if (kept.every((other) => iou(box, other) <= iouThreshold)) kept.push(box);
  }
  return kept;
}
