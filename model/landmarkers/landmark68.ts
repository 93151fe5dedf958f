/** face-api's 68-point landmark net (converted to ONNX) refining a detected face's five alignment points. */
import { join } from "node:path";
import { FIVE_POINT_SOURCES, sampleSquare, sampleSquareInto, type SquareRegion } from "../face-geometry.ts";
import { openSession, runFloat, type OnnxSession } from "../onnx-session.ts";
import type { Box, DetectedFace, FaceLandmarker, Point, RgbImage } from "../types.ts";

export const LANDMARK68_FILE = "face-api-landmark68.onnx";
const INPUT_SIZE = 112;
const POINTS = 68;

export interface Landmark68Options {
  /** Side of the first crop as a multiple of the detector box's longer side (when the detector gave no five points). */
  boxScale: number;
  /**
   * Framing of a crop from five points (the detector's, or the previous pass's): the centre lies this far from the eyes'
   * midpoint towards the mouth's, as a fraction of the eye-to-mouth distance...
   */
  centreTowardsMouth: number;
  /** ...and the side is the larger of these multiples of the eye-to-eye and the eye-to-mouth distances. */
  sidePerEyeDistance: number;
  sidePerEyeToMouth: number;
  /** Also run each pass on the mirrored crop and average the two predictions, mirrored back (lfw-devtrain, fixed crop: 98.95% -> 99.05%). */
  mirror: boolean;
  /** Extra passes, each re-cropping around the previous pass's points (on lfw-devtrain they did not help after BlazeFace). */
  refinements: number;
}

/**
 * The five-point framing is the median framing of a 121-pixel crop centred on deep-funneled LFW photos (400 people),
 * the fixed crop with which these landmarks gave the best LFW accuracy.
 */
export const DEFAULT_LANDMARK68_OPTIONS: Landmark68Options = {
  boxScale: 1.1,
  centreTowardsMouth: 0.3,
  sidePerEyeDistance: 2.91,
  sidePerEyeToMouth: 2.68,
  mirror: true,
  refinements: 0,
};

export class Landmark68 implements FaceLandmarker {
  readonly name = "face-api-landmark68";

  private constructor(
    private readonly session: OnnxSession,
    private readonly options: Landmark68Options,
  ) {}

  static async load(onnxDir: string, options: Landmark68Options = DEFAULT_LANDMARK68_OPTIONS, file = LANDMARK68_FILE): Promise<Landmark68> {
    return new Landmark68(await openSession(join(onnxDir, file)), options);
  }

  async refine(image: RgbImage, face: DetectedFace): Promise<DetectedFace> {
    return { ...face, landmarks: fivePoints(await this.locate(image, face)) };
  }

  /**
   * All 68 points, in image pixels. The crop is framed from the face's five points; a detector that gives none gets a
   * first pass on a crop of its box to find them.
   */
  async locate(image: RgbImage, face: DetectedFace): Promise<Point[]> {
    const start = face.landmarks.length === FIVE_POINT_SOURCES.length ? face.landmarks : fivePoints(await this.predict(image, this.regionInBox(face.box)));
    let points = await this.predict(image, this.regionAround(start));
    for (let pass = 0; pass < this.options.refinements; pass++) points = await this.predict(image, this.regionAround(fivePoints(points)));
    return points;
  }

  /** Boxes, like points, put integers at pixel centres. */
  regionInBox(box: Box): SquareRegion {
    const side = Math.max(box.width, box.height) * this.options.boxScale;
    return { centreX: box.x + box.width / 2 + 0.5, centreY: box.y + box.height / 2 + 0.5, side };
  }

  /** Runs the net on one square region (zero outside the image, as face-api pads) and maps its points back to the image. */
  async predict(image: RgbImage, region: SquareRegion): Promise<Point[]> {
    const fractions = this.options.mirror ? await this.predictMirrored(image, region) : await runFloat(this.session, sampleSquare(image, region, INPUT_SIZE), [1, INPUT_SIZE, INPUT_SIZE, 3]);
    // The net's fractions start at the crop's corner; points put integers at pixel centres (as align.ts does).
    const left = region.centreX - region.side / 2 - 0.5;
    const top = region.centreY - region.side / 2 - 0.5;
    return Array.from({ length: POINTS }, (_, i) => [left + fractions[2 * i]! * region.side, top + fractions[2 * i + 1]! * region.side] as const);
  }

  /** The mean of the net's points on the crop and on its mirror image (with left and right points swapped back). */
  private async predictMirrored(image: RgbImage, region: SquareRegion): Promise<Float32Array> {
    const batch = new Float32Array(INPUT_SIZE * INPUT_SIZE * 3 * 2);
    sampleSquareInto(image, region, INPUT_SIZE, batch, 0);
    mirrorRows(batch, INPUT_SIZE);
    const output = await runFloat(this.session, batch, [2, INPUT_SIZE, INPUT_SIZE, 3]);
    const mean = new Float32Array(POINTS * 2);
    for (let i = 0; i < POINTS; i++) {
      const mirrored = MIRRORED_POINT[i]!;
      mean[2 * i] = (output[2 * i]! + 1 - output[2 * (POINTS + mirrored)]!) / 2;
      mean[2 * i + 1] = (output[2 * i + 1]! + output[2 * (POINTS + mirrored) + 1]!) / 2;
    }
    return mean;
  }

  /** The crop framed around five alignment points. */
  regionAround(five: readonly Point[]): SquareRegion {
    const [leftEye, rightEye, , leftMouth, rightMouth] = five as [Point, Point, Point, Point, Point];
    const eyes = midpoint(leftEye, rightEye);
    const mouth = midpoint(leftMouth, rightMouth);
    const { centreTowardsMouth, sidePerEyeDistance, sidePerEyeToMouth } = this.options;
    return {
      centreX: eyes[0] + (mouth[0] - eyes[0]) * centreTowardsMouth + 0.5,
      centreY: eyes[1] + (mouth[1] - eyes[1]) * centreTowardsMouth + 0.5,
      side: Math.max(distance(leftEye, rightEye) * sidePerEyeDistance, distance(eyes, mouth) * sidePerEyeToMouth),
    };
  }
}

const midpoint = (a: Point, b: Point): Point => [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
const distance = (a: Point, b: Point): number => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** For each of the 68 points (iBUG 300-W numbering, 0-based), the point it becomes in the mirror image. */
const MIRRORED_POINT: readonly number[] = (() => {
  const pairs = [
    [0, 16], [1, 15], [2, 14], [3, 13], [4, 12], [5, 11], [6, 10], [7, 9], // jaw
    [17, 26], [18, 25], [19, 24], [20, 23], [21, 22], // eyebrows
    [31, 35], [32, 34], // nostrils
    [36, 45], [37, 44], [38, 43], [39, 42], [40, 47], [41, 46], // eyes
    [48, 54], [49, 53], [50, 52], [55, 59], [56, 58], [60, 64], [61, 63], [65, 67], // mouth
  ];
  const mirrored = Array.from({ length: POINTS }, (_, i) => i);
  for (const [a, b] of pairs) [mirrored[a!], mirrored[b!]] = [b!, a!];
  return mirrored;
})();

/** Writes the mirror image of the square NHWC crop at the start of `batch` right after it. */
function mirrorRows(batch: Float32Array, size: number): void {
  const second = size * size * 3;
  for (let y = 0; y < size; y++) {
    const row = y * size * 3;
    for (let x = 0; x < size; x++) {
      const from = row + x * 3;
      const to = second + row + (size - 1 - x) * 3;
      batch[to] = batch[from]!;
      batch[to + 1] = batch[from + 1]!;
      batch[to + 2] = batch[from + 2]!;
    }
  }
}

/** Eye centres (means of the eye contours), nose tip and mouth corners from the 68 points. */
export function fivePoints(points: readonly Point[]): Point[] {
  return FIVE_POINT_SOURCES.map((indices) => {
    const x = indices.reduce((sum, i) => sum + points[i]![0], 0) / indices.length;
    const y = indices.reduce((sum, i) => sum + points[i]![1], 0) / indices.length;
    return [x, y] as const;
  });
}
