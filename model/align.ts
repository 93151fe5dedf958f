/** Face alignment: a 2-D similarity transform fitted by least squares (Umeyama, no reflection) and a bilinear warp. */
import type { Point, RgbImage } from "./types.ts";

/** Maps (x, y) to (a*x - b*y + tx, b*x + a*y + ty): a rotation by atan2(b, a), a scale of hypot(a, b), a shift. */
export interface Similarity {
  a: number;
  b: number;
  tx: number;
  ty: number;
}

/** The similarity that takes `from` onto `to` with the least squared error. */
export function estimateSimilarity(from: readonly Point[], to: readonly Point[]): Similarity {
  if (from.length !== to.length || from.length < 2) throw new Error(`need matching point lists of at least 2 points, got ${from.length} and ${to.length}`);
  const [fx, fy] = centroid(from);
  const [tx, ty] = centroid(to);
  let dot = 0;
  let cross = 0;
  let norm = 0;
  for (let i = 0; i < from.length; i++) {
    const x = from[i]![0] - fx;
    const y = from[i]![1] - fy;
    const u = to[i]![0] - tx;
    const v = to[i]![1] - ty;
    dot += x * u + y * v;
    cross += x * v - y * u;
    norm += x * x + y * y;
  }
  if (norm === 0) throw new Error("the source points all coincide");
  const a = dot / norm;
  const b = cross / norm;
  return { a, b, tx: tx - (a * fx - b * fy), ty: ty - (b * fx + a * fy) };
}

export function applySimilarity(t: Similarity, [x, y]: Point): Point {
  return [t.a * x - t.b * y + t.tx, t.b * x + t.a * y + t.ty];
}

export function invertSimilarity(t: Similarity): Similarity {
  const d = t.a * t.a + t.b * t.b;
  if (d === 0) throw new Error("a similarity with zero scale has no inverse");
  const a = t.a / d;
  const b = -t.b / d;
  return { a, b, tx: -(a * t.tx - b * t.ty), ty: -(b * t.tx + a * t.ty) };
}

/** The size x size crop whose pixel (u, v) is the image sampled bilinearly at imageToCrop⁻¹(u, v); outside is black. */
export function warpSimilarity(image: RgbImage, imageToCrop: Similarity, size: number): RgbImage {
  const { a, b, tx, ty } = invertSimilarity(imageToCrop);
  const { data: src, width, height } = image;
  const out = new Uint8Array(size * size * 3);
  // a*u and b*u once per column: the same products, so the same sums, as computing them per pixel.
  const au = new Float64Array(size);
  const bu = new Float64Array(size);
  for (let u = 0; u < size; u++) {
    au[u] = a * u;
    bu[u] = b * u;
  }
  const rowBytes = width * 3;
  for (let v = 0; v < size; v++) {
    const bv = b * v;
    const av = a * v;
    for (let u = 0; u < size; u++) {
      // Integer coordinates are pixel centres in both images, as in OpenCV's warpAffine.
      const x = au[u]! - bv + tx;
      const y = bu[u]! + av + ty;
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      const wx = x - x0;
      const wy = y - y0;
      const o = (v * size + u) * 3;
      if (x0 >= 0 && y0 >= 0 && x0 + 1 < width && y0 + 1 < height) {
        // Fast path, all four neighbours inside: the image's common case.
        const i00 = y0 * rowBytes + x0 * 3;
        const i01 = i00 + rowBytes;
        for (let c = 0; c < 3; c++) {
          const top = src[i00 + c]! + (src[i00 + 3 + c]! - src[i00 + c]!) * wx;
          const bottom = src[i01 + c]! + (src[i01 + 3 + c]! - src[i01 + c]!) * wx;
          out[o + c] = (top + (bottom - top) * wy + 0.5) | 0;
        }
        continue;
      }
      for (let c = 0; c < 3; c++) {
        const p00 = pixel(src, width, height, x0, y0, c);
        const p10 = pixel(src, width, height, x0 + 1, y0, c);
        const p01 = pixel(src, width, height, x0, y0 + 1, c);
        const p11 = pixel(src, width, height, x0 + 1, y0 + 1, c);
        const value = (p00 * (1 - wx) + p10 * wx) * (1 - wy) + (p01 * (1 - wx) + p11 * wx) * wy;
        out[o + c] = (value + 0.5) | 0;
      }
    }
  }
  return { data: out, width: size, height: size };
}

/** Aligns the face whose five points are `landmarks` so they land on `template` in a size x size crop. */
export function alignFace(image: RgbImage, landmarks: readonly Point[], template: readonly Point[], size: number): RgbImage {
  return warpSimilarity(image, estimateSimilarity(landmarks, template), size);
}

/** The image mirrored left to right. */
export function flipHorizontal(image: RgbImage): RgbImage {
  const { data, width, height } = image;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const from = (y * width + x) * 3;
      const to = (y * width + (width - 1 - x)) * 3;
      out[to] = data[from]!;
      out[to + 1] = data[from + 1]!;
      out[to + 2] = data[from + 2]!;
    }
  }
  return { data: out, width, height };
}

/** Where the template's points fall when its size x size crop is stretched over a whole width x height image. */
export function templateOverImage(template: readonly Point[], size: number, width: number, height: number): Point[] {
  return template.map(([x, y]) => [(x * width) / size, (y * height) / size] as const);
}

function pixel(data: Uint8Array, width: number, height: number, x: number, y: number, c: number): number {
  if (x < 0 || y < 0 || x >= width || y >= height) return 0;
  return data[(y * width + x) * 3 + c]!;
}

function centroid(points: readonly Point[]): Point {
  let x = 0;
  let y = 0;
  for (const [px, py] of points) {
    x += px;
    y += py;
  }
  return [x / points.length, y / points.length];
}
