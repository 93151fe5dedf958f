import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { ONNX_DIR } from "../../model/onnx-session.ts";
import { suppress } from "../../model/detectors/box-overlap.ts";
import { decodeGrid, TINY_FACE_DETECTOR_FILE, TinyFaceDetector, type GridBox } from "../../model/detectors/tiny-face-detector.ts";
import { sampleSquare } from "../../model/face-geometry.ts";
import { openSession, runFloat } from "../../model/onnx-session.ts";
import type { RgbImage } from "../../model/types.ts";
import { loadReferenceTinyFaceDetector, maxAbsDifference, referenceForward } from "./support/face-api-reference.ts";
import { expectOneCentredFace } from "./support/detections.ts";
import { HAVE_LFW, readSamplePhotos } from "./support/lfw.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

describe("tiny face detector decoding", () => {
  test("decodes YOLOv2 cells: sigmoid centre offsets within the cell, exp sizes times the anchor", () => {
    const rows = 2;
    const cols = 2;
    const grid = new Float32Array(25 * rows * cols).fill(-10);
    const cell = 1 * cols + 0; // row 1, column 0
    const set = (anchor: number, k: number, value: number) => (grid[(anchor * 5 + k) * rows * cols + cell] = value);
    [0, 0, 0, 0, 3].forEach((value, k) => set(2, k, value)); // anchor 2: 2.882459 x 3.518061 cells
    const [box, ...rest] = decodeGrid(grid, rows, cols, 0.5);
    expect(rest).toEqual([]);
    expect(box!.score).toBeCloseTo(1 / (1 + Math.exp(-3)), 6);
    expect((box!.x1 + box!.x2) / 2).toBeCloseTo(0.5 / cols, 6);
    expect((box!.y1 + box!.y2) / 2).toBeCloseTo(1.5 / rows, 6);
    expect(box!.x2 - box!.x1).toBeCloseTo(2.882459 / cols, 6);
    expect(box!.y2 - box!.y1).toBeCloseTo(3.518061 / rows, 6);
  });

  test("suppression keeps the best of overlapping boxes and separate faces", () => {
    const box = (score: number, x1: number): GridBox => ({ score, x1, y1: 0, x2: x1 + 0.2, y2: 0.2 });
    expect(suppress([box(0.6, 0), box(0.9, 0.02), box(0.7, 0.5)], 0.4, 10)).toEqual([box(0.9, 0.02), box(0.7, 0.5)]);
    expect(suppress([box(0.6, 0), box(0.7, 0.5)], 0.4, 1)).toEqual([box(0.7, 0.5)]);
  });
});

describe.skipIf(!HAVE_LFW)("tiny face detector on ONNX Runtime", () => {
  let photos: RgbImage[];
  beforeAll(async () => {
    photos = await readSamplePhotos();
  });

  test("equals face-api's TensorFlow.js network within 1e-4 on real photos", async () => {
    const size = 320;
    const pixels = new Float32Array(photos.length * size * size * 3);
    photos.forEach((photo, i) => pixels.set(sampleSquare(photo, { centreX: 125, centreY: 125, side: 250 }, size), i * size * size * 3));
    const session = await openSession(join(ONNX_DIR, TINY_FACE_DETECTOR_FILE));
    const onnx = await runFloat(session, pixels, [photos.length, size, size, 3]);
    const reference = await referenceForward(await loadReferenceTinyFaceDetector(), pixels, size);
    // ONNX gives NCHW [batch, 25, 10, 10]; face-api NHWC [batch, 10, 10, 25].
    const cells = 10 * 10;
    const nhwc = new Float32Array(onnx.length);
    for (let b = 0; b < photos.length; b++) {
      for (let c = 0; c < 25; c++) for (let i = 0; i < cells; i++) nhwc[(b * cells + i) * 25 + c] = onnx[(b * 25 + c) * cells + i]!;
    }
    expect(onnx.length).toBe(photos.length * 25 * cells);
    expect(maxAbsDifference(nhwc, reference)).toBeLessThanOrEqual(1e-4);
  });

  test("finds the one face of an LFW photo, centred, with coarse points inside its box", async () => {
    const detector = await TinyFaceDetector.load(ONNX_DIR);
    for (const photo of photos) expectOneCentredFace(await detector.detect(photo));
  });

  test("refuses an input size that is not a multiple of 32", async () => {
    await expect(TinyFaceDetector.load(ONNX_DIR, { inputSize: 300, minScore: 0.3, iouThreshold: 0.4, maxFaces: 10 })).rejects.toThrow("multiple of 32");
  });
});
