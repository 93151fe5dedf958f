/**
 * Alignment points from the detector's own keypoints, without a landmark network. BlazeFace's eye centres, nose tip and
 * mouth centre are put by a similarity onto where they fall, on average, once landmark68's five points sit on dlib's
 * mean face; in that frame a linear map of those keypoints and the box predicts landmark68's five points, which the
 * similarity's inverse takes back into the image. Both learnt from lfw-devtrain by scripts/learn-keypoint-template.ts.
 * BlazeFace's mouth corners are a guess from its mouth centre, so only its centre is used.
 */
import { join } from "node:path";
import { applySimilarity, estimateSimilarity, invertSimilarity, type Similarity } from "../align.ts";
import type { Box, DetectedFace, FaceLandmarker, Point, RgbImage } from "../types.ts";

export const KEYPOINT_TEMPLATE_PATH = join(import.meta.dir, "keypoint-template.json");

export interface KeypointTemplate {
  source: string;
  /** Left eye, right eye, nose tip, mouth centre, in the mean face's unit frame (`MEAN_FACE_FIVE_POINTS`). */
  keypoints: Point[];
  /** One row per feature (`keypointFeatures`), one column per coordinate of the five points (x then y). */
  weights: number[][];
}

/** Eye centres, nose tip and mouth centre from a detector's five points (its mouth corners' midpoint). */
export function detectorKeypoints(five: readonly Point[]): Point[] {
  const [leftEye, rightEye, nose, leftMouth, rightMouth] = five as [Point, Point, Point, Point, Point];
  return [leftEye, rightEye, nose, [(leftMouth[0] + rightMouth[0]) / 2, (leftMouth[1] + rightMouth[1]) / 2]];
}

/** The regression's inputs in the template's frame: the four keypoints, the box's corners, and 1. */
export function keypointFeatures(keypoints: readonly Point[], box: Box, toFrame: Similarity): number[] {
  const corners: Point[] = [[box.x, box.y], [box.x + box.width, box.y + box.height]];
  return [...[...keypoints, ...corners].flatMap((point) => applySimilarity(toFrame, point)), 1];
}

export class KeypointTemplateLandmarker implements FaceLandmarker {
  readonly name = "keypoint-template";

  private constructor(private readonly template: KeypointTemplate) {}

  static async load(path = KEYPOINT_TEMPLATE_PATH): Promise<KeypointTemplateLandmarker> {
    return new KeypointTemplateLandmarker((await Bun.file(path).json()) as KeypointTemplate);
  }

  /** A face without five detector points (a detector that gives none) is left as it is. */
  async refine(_image: RgbImage, face: DetectedFace): Promise<DetectedFace> {
    if (face.landmarks.length !== 5) return face;
    return { ...face, landmarks: predictFivePoints(this.template, face.landmarks, face.box) };
  }
}

/** landmark68's five points as the template predicts them from a detector's five points and box, in image pixels. */
export function predictFivePoints({ keypoints, weights }: Omit<KeypointTemplate, "source">, five: readonly Point[], box: Box): Point[] {
  const detected = detectorKeypoints(five);
  const toFrame = estimateSimilarity(detected, keypoints);
  const features = keypointFeatures(detected, box, toFrame);
  const coordinate = (column: number) => features.reduce((sum, value, row) => sum + value * weights[row]![column]!, 0);
  const fromFrame = invertSimilarity(toFrame);
  return Array.from({ length: 5 }, (_, i) => applySimilarity(fromFrame, [coordinate(2 * i), coordinate(2 * i + 1)]));
}
