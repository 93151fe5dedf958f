import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { ONNX_DIR } from "../../model/onnx-session.ts";
import { sampleSquare, sampleSquareInto, type SquareRegion } from "../../model/face-geometry.ts";
import { fivePoints, LANDMARK68_FILE, Landmark68 } from "../../model/landmarkers/landmark68.ts";
import { openSession, runFloat } from "../../model/onnx-session.ts";
import type { Box, DetectedFace, Point, RgbImage } from "../../model/types.ts";
import { loadReferenceLandmarkNet, maxAbsDifference, referenceForward } from "./support/face-api-reference.ts";
import { HAVE_LFW, readSamplePhotos } from "./support/lfw.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

const distance = (a: Point, b: Point) => Math.hypot(a[0] - b[0], a[1] - b[1]);
const faceIn = (box: Box): DetectedFace => ({ box, score: 1, landmarks: [], wholeImage: false });

describe("five points from 68", () => {
  test("eye centres are the contour means, nose tip is point 30, mouth corners are 48 and 54", () => {
    const points: Point[] = Array.from({ length: 68 }, (_, i) => [i, 2 * i] as const);
    expect(fivePoints(points)).toEqual([[38.5, 77], [44.5, 89], [30, 60], [48, 96], [54, 108]]);
  });
});

describe("square sampling", () => {
  const image: RgbImage = { data: Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => i), width: 4, height: 4 };

  test("a region equal to the image at its own size copies the pixels", () => {
    expect(Array.from(sampleSquare(image, { centreX: 2, centreY: 2, side: 4 }, 4))).toEqual(Array.from(image.data));
  });

  test("equals the plain bilinear formula (neighbours outside read as 0) on regions inside, across and outside the image, and into a batch", () => {
    const odd: RgbImage = { data: Uint8Array.from({ length: 7 * 5 * 3 }, (_, i) => (i * 37) % 256), width: 7, height: 5 };
    const plain = (region: SquareRegion, size: number) => {
      const out: number[] = [];
      const step = region.side / size;
      const at = (x: number, y: number, c: number) => (x < 0 || y < 0 || x >= odd.width || y >= odd.height ? 0 : odd.data[(y * odd.width + x) * 3 + c]!);
      for (let v = 0; v < size; v++) {
        for (let u = 0; u < size; u++) {
          const sx = region.centreX - region.side / 2 + (u + 0.5) * step - 0.5;
          const sy = region.centreY - region.side / 2 + (v + 0.5) * step - 0.5;
          const [x0, y0] = [Math.floor(sx), Math.floor(sy)];
          const [fx, fy] = [sx - x0, sy - y0];
          for (let c = 0; c < 3; c++) {
            const top = at(x0, y0, c) * (1 - fx) + at(x0 + 1, y0, c) * fx;
            const bottom = at(x0, y0 + 1, c) * (1 - fx) + at(x0 + 1, y0 + 1, c) * fx;
            out.push(Math.fround(top * (1 - fy) + bottom * fy));
          }
        }
      }
      return out;
    };
    const regions: SquareRegion[] = [
      { centreX: 3.5, centreY: 2.5, side: 4.3 },
      { centreX: 0.2, centreY: 4.9, side: 6.1 },
      { centreX: 6.7, centreY: -0.4, side: 3 },
      { centreX: -10, centreY: -10, side: 2 },
      { centreX: 3.5, centreY: 2.5, side: 20 },
    ];
    for (const region of regions) {
      for (const size of [1, 3, 8]) {
        expect(Array.from(sampleSquare(odd, region, size))).toEqual(plain(region, size));
        const batch = new Float32Array(2 * size * size * 3).fill(-1);
        sampleSquareInto(odd, region, size, batch, size * size * 3);
        expect(Array.from(batch.subarray(size * size * 3))).toEqual(plain(region, size));
        expect(batch.subarray(0, size * size * 3).every((value) => value === -1)).toBe(true);
      }
    }
  });

  test("outside the image is black, as face-api pads", () => {
    const sampled = sampleSquare(image, { centreX: 0, centreY: 0, side: 4 }, 4);
    expect(Array.from(sampled.slice(0, 3))).toEqual([0, 0, 0]);
    expect(Array.from(sampled.slice((2 * 4 + 2) * 3, (2 * 4 + 2) * 3 + 3))).toEqual([0, 1, 2]);
  });
});

describe.skipIf(!HAVE_LFW)("68-point landmark net on ONNX Runtime", () => {
  let photos: RgbImage[];
  beforeAll(async () => {
    photos = await readSamplePhotos();
  });

  test("equals face-api's TensorFlow.js network within 1e-4 on real photos", async () => {
    const crops = photos.map((photo) => sampleSquare(photo, { centreX: 125, centreY: 118, side: 125 }, 112));
    const pixels = new Float32Array(crops.length * 112 * 112 * 3);
    crops.forEach((crop, i) => pixels.set(crop, i * 112 * 112 * 3));
    const session = await openSession(join(ONNX_DIR, LANDMARK68_FILE));
    const onnx = await runFloat(session, pixels, [crops.length, 112, 112, 3]);
    const reference = await referenceForward(await loadReferenceLandmarkNet(), pixels, 112);
    expect(onnx.length).toBe(crops.length * 136);
    expect(maxAbsDifference(onnx, reference)).toBeLessThanOrEqual(1e-4);
  });

  test("refines a face's five points into a plausible face layout", async () => {
    const landmarker = await Landmark68.load(ONNX_DIR);
    for (const photo of photos) {
      const face = await landmarker.refine(photo, faceIn({ x: 75, y: 75, width: 100, height: 100 }));
      const [leftEye, rightEye, nose, leftMouth, rightMouth] = face.landmarks as Point[];
      expect(face.box).toEqual({ x: 75, y: 75, width: 100, height: 100 });
      // Deep-funneled LFW faces are upright and centred, with eyes roughly 40 pixels apart.
      expect(distance(leftEye!, rightEye!)).toBeGreaterThan(30);
      expect(distance(leftEye!, rightEye!)).toBeLessThan(60);
      expect(leftEye![0]).toBeLessThan(nose![0]);
      expect(nose![0]).toBeLessThan(rightEye![0]);
      expect(leftMouth![0]).toBeLessThan(rightMouth![0]);
      expect(Math.max(leftEye![1], rightEye![1])).toBeLessThan(nose![1]);
      expect(nose![1]).toBeLessThan(Math.min(leftMouth![1], rightMouth![1]));
    }
  });

  test("from a box alone, the points barely depend on how the box frames the face", async () => {
    const landmarker = await Landmark68.load(ONNX_DIR);
    const photo = photos[0]!;
    const centred = await landmarker.refine(photo, faceIn({ x: 75, y: 75, width: 100, height: 100 }));
    const shiftedBox = { x: 62, y: 88, width: 120, height: 120 };
    const shifted = await landmarker.refine(photo, faceIn(shiftedBox));
    const boxPassOnly = fivePoints(await landmarker.predict(photo, landmarker.regionInBox(shiftedBox)));
    const drift = (points: readonly Point[]) => Math.max(...points.map((point, i) => distance(point, centred.landmarks[i]!)));
    expect(drift(shifted.landmarks)).toBeLessThan(1);
    expect(drift(shifted.landmarks)).toBeLessThan(drift(boxPassOnly));
  });

  test("a detector's coarse five points frame the first crop in place of its box", async () => {
    const landmarker = await Landmark68.load(ONNX_DIR);
    const photo = photos[2]!;
    const fromBox = await landmarker.refine(photo, faceIn({ x: 75, y: 75, width: 100, height: 100 }));
    const coarse = fromBox.landmarks.map(([x, y], i) => [x + 5 - 2 * i, y - 4 + i] as const);
    // A box far off the face: only the five points can lead the landmarker back to it.
    const fromPoints = await landmarker.refine(photo, { ...faceIn({ x: 0, y: 0, width: 40, height: 40 }), landmarks: coarse });
    expect(fromPoints.box).toEqual({ x: 0, y: 0, width: 40, height: 40 });
    expect(Math.max(...fromPoints.landmarks.map((point, i) => distance(point, fromBox.landmarks[i]!)))).toBeLessThan(2);
  });

  test("mirroring the photo mirrors the points, with left and right swapped", async () => {
    const landmarker = await Landmark68.load(ONNX_DIR);
    const photo = photos[1]!;
    const { width, height } = photo;
    const mirrored = new Uint8Array(photo.data.length);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) mirrored.set(photo.data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3), (y * width + width - 1 - x) * 3);
    }
    const box = { x: 70, y: 80, width: 100, height: 100 };
    const original = await landmarker.refine(photo, faceIn(box));
    const flipped = await landmarker.refine({ data: mirrored, width, height }, faceIn({ ...box, x: width - 1 - box.x - box.width }));
    const swapped = [1, 0, 2, 4, 3];
    flipped.landmarks.forEach(([x, y], i) => {
      const [originalX, originalY] = original.landmarks[swapped[i]!]!;
      expect(x).toBeCloseTo(width - 1 - originalX, 2);
      expect(y).toBeCloseTo(originalY, 2);
    });
  });
});
