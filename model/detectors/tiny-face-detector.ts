/**
 * face-api's TinyFaceDetector (converted to ONNX): a Tiny-YOLOv2 grid of 5 anchors per cell, one class. The image is
 * padded to a square at the bottom/right and resized to the input size, as face-api does; boxes are decoded and
 * suppressed here. It gives no keypoints, so the five points are the average face's inside its box (see COARSE_POINTS).
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { suppress, type Corners } from "./box-overlap.ts";
import { faceInSquare, paddedSquare } from "./face-api-input.ts";
import { openSession, type OnnxSession } from "../onnx-session.ts";
import type { DetectedFace, FaceDetector, Point, RgbImage } from "../types.ts";

export const TINY_FACE_DETECTOR_FILE = "face-api-tiny-face-detector.onnx";

export interface TinyFaceDetectorOptions {
  /** Side of the square network input; a multiple of 32. */
  inputSize: number;
  minScore: number;
  /** Boxes overlapping a better one by more than this IoU are dropped (face-api uses 0.4). */
  iouThreshold: number;
  maxFaces: number;
}

/**
 * face-api defaults to 416 and 0.5; on 400 lfw-devtrain photos those missed 13 faces and 320 with 0.3 missed 5
 * (256 with 0.3: 3, at half the time). The net is sensitive to the face's size in the input.
 */
const DEFAULT_TINY_FACE_DETECTOR_OPTIONS: TinyFaceDetectorOptions = { inputSize: 320, minScore: 0.3, iouThreshold: 0.4, maxFaces: 10 };

/** Anchor sizes in grid cells, from face-api's src/tinyFaceDetector/const.ts (BOX_ANCHORS). */
const ANCHORS: readonly Point[] = [
  [1.603231, 2.094468],
  [6.041143, 7.080126],
  [2.882459, 3.518061],
  [4.266906, 5.178857],
  [9.041765, 10.66308],
];
/** x, y, w, h, score per anchor. */
const ENCODING = 5;

/** A decoded face in the network's square input, coordinates as fractions of its side. */
export interface GridBox extends Corners {
  score: number;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** Decodes the raw NCHW grid [anchors * 5, rows, cols] (YOLOv2: sigmoid centre offsets, exp sizes times anchors). */
export function decodeGrid(grid: Float32Array, rows: number, cols: number, minScore: number): GridBox[] {
  const cells = rows * cols;
  const at = (anchor: number, k: number, cell: number) => grid[(anchor * ENCODING + k) * cells + cell]!;
  const boxes: GridBox[] = [];
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < cols; col++) {
      const cell = row * cols + col;
      for (const [anchor, [anchorWidth, anchorHeight]] of ANCHORS.entries()) {
        const score = sigmoid(at(anchor, 4, cell));
        if (score < minScore) continue;
        const centreX = (col + sigmoid(at(anchor, 0, cell))) / cols;
        const centreY = (row + sigmoid(at(anchor, 1, cell))) / rows;
        const width = (Math.exp(at(anchor, 2, cell)) * anchorWidth) / cols;
        const height = (Math.exp(at(anchor, 3, cell)) * anchorHeight) / rows;
        boxes.push({ score, x1: centreX - width / 2, y1: centreY - height / 2, x2: centreX + width / 2, y2: centreY + height / 2 });
      }
    }
  }
  return boxes;
}

/**
 * The five alignment points as fractions of this detector's box: the median positions of the Landmark68 points in the
 * boxes it found (default options) on 400 deep-funneled lfw-devtrain photos, measured once; coarse by nature.
 */
const COARSE_POINTS: readonly Point[] = [
  [0.354, 0.234],
  [0.69, 0.224],
  [0.531, 0.446],
  [0.38, 0.63],
  [0.669, 0.625],
];

export class TinyFaceDetector implements FaceDetector {
  readonly name = "tiny-face-detector";

  private constructor(
    private readonly session: OnnxSession,
    private readonly options: TinyFaceDetectorOptions,
  ) {}

  static async load(onnxDir: string, options: TinyFaceDetectorOptions = DEFAULT_TINY_FACE_DETECTOR_OPTIONS): Promise<TinyFaceDetector> {
    if (options.inputSize % 32 !== 0) throw new Error(`tiny face detector input size must be a multiple of 32, got ${options.inputSize}`);
    return new TinyFaceDetector(await openSession(join(onnxDir, TINY_FACE_DETECTOR_FILE)), options);
  }

  async detect(image: RgbImage): Promise<DetectedFace[]> {
    const { inputSize, minScore, iouThreshold, maxFaces } = this.options;
    const { pixels, side } = paddedSquare(image, inputSize);
    const outputs = await this.session.run({ pixels: new ort.Tensor("float32", pixels, [1, inputSize, inputSize, 3]) });
    const grid = outputs.grid!;
    const [, , rows, cols] = grid.dims as [number, number, number, number];
    const faces = suppress(decodeGrid(grid.data as Float32Array, rows, cols, minScore), iouThreshold, maxFaces);
    return faces.map((face) => faceInSquare(face, side, image, COARSE_POINTS));
  }
}
