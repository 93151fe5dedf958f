/**
 * The standard five-point alignment template of ArcFace / InsightFace 112x112 face crops (left eye, right eye, nose tip,
 * left mouth corner, right mouth corner, in crop pixels; "left" = smaller x). Reproduced from `arcface_dst` in
 * insightface's python-package/insightface/utils/face_align.py (github.com/deepinsight/insightface); the MS1M training
 * crops that MobileFaceNet-style models learn from were aligned to it.
 */
import type { Point } from "../types.ts";

export const ARCFACE_TEMPLATE_112: readonly Point[] = [
  [38.2946, 51.6963],
  [73.5318, 51.5014],
  [56.0252, 71.7366],
  [41.5493, 92.3655],
  [70.7299, 92.2041],
];
