import { describe, expect, test } from "bun:test";
import { alignFace, applySimilarity, estimateSimilarity, flipHorizontal, invertSimilarity, templateOverImage, warpSimilarity } from "../../model/align.ts";
import type { Point, RgbImage } from "../../model/types.ts";

const points: Point[] = [[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]];

function transformWith(scale: number, angle: number, tx: number, ty: number) {
  return { a: scale * Math.cos(angle), b: scale * Math.sin(angle), tx, ty };
}

describe("estimateSimilarity", () => {
  test("recovers an exact rotation, scale and shift", () => {
    const truth = transformWith(2.5, 0.3, -17, 42);
    const moved = points.map((p) => applySimilarity(truth, p));
    const fitted = estimateSimilarity(points, moved);
    expect(fitted.a).toBeCloseTo(truth.a, 9);
    expect(fitted.b).toBeCloseTo(truth.b, 9);
    expect(fitted.tx).toBeCloseTo(truth.tx, 9);
    expect(fitted.ty).toBeCloseTo(truth.ty, 9);
  });

  test("is the least-squares fit when the points are noisy", () => {
    const truth = transformWith(0.8, -0.2, 5, 3);
    const noise: Point[] = [[0.5, -0.3], [-0.4, 0.2], [0.1, 0.6], [-0.3, -0.4], [0.2, 0.1]];
    const moved = points.map((p, i) => {
      const [x, y] = applySimilarity(truth, p);
      return [x + noise[i]![0], y + noise[i]![1]] as const;
    });
    const fitted = estimateSimilarity(points, moved);
    const error = (t: typeof fitted) =>
      points.reduce((sum, p, i) => {
        const [x, y] = applySimilarity(t, p);
        return sum + (x - moved[i]![0]) ** 2 + (y - moved[i]![1]) ** 2;
      }, 0);
    const best = error(fitted);
    for (const nudge of [1e-3, -1e-3]) {
      for (const key of ["a", "b", "tx", "ty"] as const) expect(error({ ...fitted, [key]: fitted[key] + nudge })).toBeGreaterThan(best);
    }
  });

  test("never reflects: a mirrored point set gives a rotation, not a flip", () => {
    const mirrored = points.map(([x, y]) => [-x, y] as const);
    const fitted = estimateSimilarity(points, mirrored);
    expect(Math.hypot(fitted.a, fitted.b)).toBeLessThan(1);
  });

  test("refuses coincident points", () => {
    expect(() => estimateSimilarity([[1, 1], [1, 1]], [[0, 0], [1, 1]])).toThrow();
  });
});

test("invertSimilarity undoes the transform", () => {
  const t = transformWith(1.7, 1.1, 3, -9);
  const back = invertSimilarity(t);
  for (const p of points) {
    const [x, y] = applySimilarity(back, applySimilarity(t, p));
    expect(x).toBeCloseTo(p[0], 9);
    expect(y).toBeCloseTo(p[1], 9);
  }
});

function gradient(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set([x * 2, y * 3, 100], (y * width + x) * 3);
  }
  return { data, width, height };
}

describe("warpSimilarity", () => {
  test("the identity copies the image", () => {
    const image = gradient(20, 20);
    expect(warpSimilarity(image, { a: 1, b: 0, tx: 0, ty: 0 }, 20).data).toEqual(image.data);
  });

  test("a shift by a whole pixel moves the pixels, with black outside", () => {
    const image = gradient(10, 10);
    const crop = warpSimilarity(image, { a: 1, b: 0, tx: -3, ty: 0 }, 10);
    expect([...crop.data.subarray(0, 3)]).toEqual([6, 0, 100]);
    const last = (9 * 10 + 9) * 3;
    expect([...crop.data.subarray(last, last + 3)]).toEqual([0, 0, 0]);
  });

  test("interpolates bilinearly between pixels", () => {
    const image = gradient(10, 10);
    const crop = warpSimilarity(image, { a: 2, b: 0, tx: 0, ty: 0 }, 6);
    // Crop pixel (1, 3) samples the image at (0.5, 1.5): red 2 * 0.5, green 3 * 1.5.
    const o = (3 * 6 + 1) * 3;
    expect([...crop.data.subarray(o, o + 3)]).toEqual([1, 5, 100]);
  });
});

test("alignFace puts landmarks drawn in the image onto the template", () => {
  const template: Point[] = [[20, 25], [44, 25], [32, 38], [23, 50], [41, 50]];
  const size = 64;
  // Bright dots at the landmarks of a rotated, scaled face in a 200x200 image.
  const truth = transformWith(2.2, 0.4, 60, 10);
  const landmarks = template.map((p) => applySimilarity(truth, p));
  const image: RgbImage = { data: new Uint8Array(200 * 200 * 3), width: 200, height: 200 };
  for (const [x, y] of landmarks) {
    for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) image.data.fill(255, ((Math.round(y) + dy) * 200 + Math.round(x) + dx) * 3, ((Math.round(y) + dy) * 200 + Math.round(x) + dx) * 3 + 3);
  }
  const crop = alignFace(image, landmarks, template, size);
  for (const [x, y] of template) expect(crop.data[(y * size + x) * 3]!).toBeGreaterThan(200);
  expect(crop.data[(5 * size + 5) * 3]).toBe(0);
});

test("flipHorizontal mirrors rows and is its own inverse", () => {
  const image = gradient(7, 3);
  const flipped = flipHorizontal(image);
  expect([...flipped.data.subarray(0, 3)]).toEqual([12, 0, 100]);
  expect(flipHorizontal(flipped).data).toEqual(image.data);
});

test("templateOverImage stretches the template's crop over the image", () => {
  expect(templateOverImage([[56, 28], [0, 112]], 112, 64, 32)).toEqual([[32, 8], [0, 32]]);
});
