/**
 * Face geometry the networks share: the alignment templates (where the five points land in an embedder's crop), the
 * 68-point indices behind the five points, and the square-region sampler that cuts the networks' inputs.
 */
import type { Point, RgbImage } from "./types.ts";

/**
 * The standard five-point alignment template of ArcFace / InsightFace 112x112 face crops (left eye, right eye, nose tip,
 * left mouth corner, right mouth corner, in crop pixels; "left" = smaller x). Reproduced from `arcface_dst` in
 * insightface's python-package/insightface/utils/face_align.py (github.com/deepinsight/insightface). BlazeFace places
 * its mouth corners by it.
 */
export const ARCFACE_TEMPLATE_112: readonly Point[] = [
  [38.2946, 51.6963],
  [73.5318, 51.5014],
  [56.0252, 71.7366],
  [41.5493, 92.3655],
  [70.7299, 92.2041],
];

/**
 * Where dlib's face chips put the five alignment points, for the dlib ResNet descriptor (150x150, padding 0.25).
 *
 * dlib's get_face_chip_details(det, size, padding) maps the mean face shape (points 17..67 of the 68-point scheme,
 * coordinates in [0, 1]) to chip pixels as size * (padding + mean) / (2 * padding + 1) and fits a similarity
 * transform from the detected landmarks to those positions. dlib_face_recognition_resnet_model_v1 was trained on
 * chips from get_face_chip_details(shape, 150, 0.25). Our five points are derived from the same mean face:
 * eye centres are the means of the eye contours (36-41 and 42-47), the nose tip is point 30 and the mouth corners
 * are points 48 and 54 (0-based), so the template is exactly where dlib's chip puts those landmarks of the mean face.
 *
 * mean_face_shape_x / mean_face_shape_y for points 17..67, reproduced from dlib's get_face_chip_details in
 * dlib/image_transforms/interpolation.h (github.com/davisking/dlib, commit 031bb7d092469cc48f0664300dd2e2f0c51c944c).
 */
const MEAN_FACE_SHAPE_X = [
  0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004, 0.490127,
  0.490127, 0.490127, 0.490127, 0.36688, 0.426036, 0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825,
  0.334606, 0.260918, 0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149, 0.340985,
  0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721, 0.490127, 0.423532, 0.338094, 0.290379,
  0.428096, 0.490127, 0.552157, 0.689874, 0.553364, 0.490127, 0.42689,
];
const MEAN_FACE_SHAPE_Y = [
  0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915, 0.106454, 0.203352,
  0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852,
  0.231733, 0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405,
  0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792,
  0.778746, 0.785343, 0.778746, 0.784792, 0.824182, 0.831803, 0.824182,
];
const FIRST_MEAN_FACE_POINT = 17;

/** The 68-point indices (0-based) whose mean gives each of the five alignment points, in Point order. */
export const FIVE_POINT_SOURCES: readonly (readonly number[])[] = [
  [36, 37, 38, 39, 40, 41], // left eye (smaller x in the image)
  [42, 43, 44, 45, 46, 47], // right eye
  [30], // nose tip
  [48], // left mouth corner
  [54], // right mouth corner
];

/** The five-point template of a dlib face chip of `size` pixels with `padding`. */
export function dlibFaceChipTemplate(size: number, padding: number): Point[] {
  return dlibFaceChipPoints(FIVE_POINT_SOURCES, size, padding);
}

/** The five alignment points of dlib's mean face, in its own unit frame (a chip of size 1 without padding). */
export const MEAN_FACE_FIVE_POINTS: readonly Point[] = dlibFaceChipTemplate(1, 0);

/** Where a dlib face chip puts each of these points of the mean face, each the mean of some 68-point indices (17..67). */
export function dlibFaceChipPoints(sources: readonly (readonly number[])[], size: number, padding: number): Point[] {
  const toChip = (mean: number) => (size * (padding + mean)) / (2 * padding + 1);
  return sources.map((indices) => {
    const meanOf = (shape: number[]) =>
      indices.reduce((sum, i) => sum + shape[i - FIRST_MEAN_FACE_POINT]!, 0) / indices.length;
    return [toChip(meanOf(MEAN_FACE_SHAPE_X)), toChip(meanOf(MEAN_FACE_SHAPE_Y))] as const;
  });
}

/** A square region of the image, in image pixels measured from its corner (pixel i spans i..i+1). */
export interface SquareRegion {
  centreX: number;
  centreY: number;
  side: number;
}

/** Bilinear resampling of a square image region to size x size RGB floats (0..255, NHWC), zero outside the image. */
export function sampleSquare(image: RgbImage, region: SquareRegion, size: number): Float32Array {
  const out = new Float32Array(size * size * 3);
  sampleSquareInto(image, region, size, out, 0);
  return out;
}

/**
 * `sampleSquare` written into `out` from `offset` (a network's batch, so no copy follows). One pass: the columns'
 * source positions are worked out once, and pixels whose four neighbours are inside the image skip the bounds checks.
 */
export function sampleSquareInto(image: RgbImage, region: SquareRegion, size: number, out: Float32Array, offset: number): void {
  const step = region.side / size;
  const left = region.centreX - region.side / 2;
  const top = region.centreY - region.side / 2;
  const { data, width, height } = image;
  const columns = new Int32Array(size);
  const columnWeights = new Float64Array(size);
  for (let u = 0; u < size; u++) {
    const sx = left + (u + 0.5) * step - 0.5;
    columns[u] = Math.floor(sx);
    columnWeights[u] = sx - columns[u]!;
  }
  const rowBytes = width * 3;
  for (let v = 0; v < size; v++) {
    const sy = top + (v + 0.5) * step - 0.5;
    const y0 = Math.floor(sy);
    const fy = sy - y0;
    const topInside = y0 >= 0 && y0 < height;
    const bottomInside = y0 + 1 >= 0 && y0 + 1 < height;
    const topRowStart = y0 * rowBytes;
    let o = offset + v * size * 3;
    for (let u = 0; u < size; u++, o += 3) {
      const x0 = columns[u]!;
      const fx = columnWeights[u]!;
      const i00 = topRowStart + x0 * 3;
      const i01 = i00 + rowBytes;
      if (topInside && bottomInside && x0 >= 0 && x0 + 1 < width) {
        for (let c = 0; c < 3; c++) {
          const topRow = data[i00 + c]! * (1 - fx) + data[i00 + 3 + c]! * fx;
          const bottomRow = data[i01 + c]! * (1 - fx) + data[i01 + 3 + c]! * fx;
          out[o + c] = topRow * (1 - fy) + bottomRow * fy;
        }
        continue;
      }
      const leftInside = x0 >= 0 && x0 < width;
      const rightInside = x0 + 1 >= 0 && x0 + 1 < width;
      for (let c = 0; c < 3; c++) {
        const p00 = topInside && leftInside ? data[i00 + c]! : 0;
        const p10 = topInside && rightInside ? data[i00 + 3 + c]! : 0;
        const p01 = bottomInside && leftInside ? data[i01 + c]! : 0;
        const p11 = bottomInside && rightInside ? data[i01 + 3 + c]! : 0;
        const topRow = p00 * (1 - fx) + p10 * fx;
        const bottomRow = p01 * (1 - fx) + p11 * fx;
        out[o + c] = topRow * (1 - fy) + bottomRow * fy;
      }
    }
  }
}
