/**
 * face-api's SsdMobilenetv1 face detector (converted to ONNX, boxes decoded in the graph): 512x512 input, 5118 anchors.
 * Far slower than BlazeFace and the tiny detector; the image is padded to a square at the bottom/right as face-api
 * does, and overlapping boxes are suppressed here. It gives no keypoints (see COARSE_POINTS).
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { openSession, type OnnxSession } from "../onnx-session.ts";
import type { DetectedFace, FaceDetector, Point, RgbImage } from "../types.ts";
import { suppress } from "./box-overlap.ts";
import { faceInSquare, paddedSquare } from "./face-api-input.ts";

export const SSD_MOBILENET_FILE = "face-api-ssd-mobilenetv1.onnx";
const INPUT_SIZE = 512;

export interface SsdMobilenetOptions {
  minScore: number;
  iouThreshold: number;
  maxFaces: number;
}

/**
 * face-api's defaults (SsdMobilenetv1Options: minConfidence 0.5; locateFaces: IoU 0.5). On 400 lfw-devtrain photos they
 * missed 35 faces (0.3: 20): this net is unsure of faces filling half the picture.
 */
const DEFAULT_SSD_MOBILENET_OPTIONS: SsdMobilenetOptions = { minScore: 0.5, iouThreshold: 0.5, maxFaces: 10 };

/**
 * The five alignment points as fractions of this detector's box: the median positions of the Landmark68 points in the
 * boxes it found on 400 deep-funneled lfw-devtrain photos, measured once; coarse by nature.
 */
const COARSE_POINTS: readonly Point[] = [
  [0.305, 0.356],
  [0.737, 0.346],
  [0.525, 0.559],
  [0.343, 0.741],
  [0.71, 0.735],
];

export class SsdMobilenetDetector implements FaceDetector {
  readonly name = "ssd-mobilenet";

  private constructor(
    private readonly session: OnnxSession,
    private readonly options: SsdMobilenetOptions,
  ) {}

  static async load(onnxDir: string, options: SsdMobilenetOptions = DEFAULT_SSD_MOBILENET_OPTIONS): Promise<SsdMobilenetDetector> {
    return new SsdMobilenetDetector(await openSession(join(onnxDir, SSD_MOBILENET_FILE)), options);
  }

  async detect(image: RgbImage): Promise<DetectedFace[]> {
    const { minScore, iouThreshold, maxFaces } = this.options;
    const { pixels, side } = paddedSquare(image, INPUT_SIZE);
    const outputs = await this.session.run({ pixels: new ort.Tensor("float32", pixels, [1, INPUT_SIZE, INPUT_SIZE, 3]) });
    const boxes = outputs.boxes!.data as Float32Array;
    const scores = outputs.scores!.data as Float32Array;
    const candidates = [];
    for (let i = 0; i < scores.length; i++) {
      if (scores[i]! < minScore) continue;
      // (top, left, bottom, right), clamped to the input as face-api does.
      const [y1, x1, y2, x2] = Array.from(boxes.subarray(i * 4, i * 4 + 4), (value) => Math.min(1, Math.max(0, value)));
      candidates.push({ score: scores[i]!, x1: x1!, y1: y1!, x2: x2!, y2: y2! });
    }
    return suppress(candidates, iouThreshold, maxFaces).map((face) => faceInSquare(face, side, image, COARSE_POINTS));
  }
}
