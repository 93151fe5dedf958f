import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { ONNX_DIR } from "../../model/onnx-session.ts";
import { HUMAN_MODELS_DIR } from "../../model/build/human-models.ts";
import { flipHorizontal } from "../../model/align.ts";
import {
  BLAZEFACE_BACK,
  BLAZEFACE_FRONT,
  BlazeFaceDetector,
  blazeFaceAnchors,
  fivePointsFromKeypoints,
  weightedNms,
  type Candidate,
} from "../../model/detectors/blazeface.ts";
import { openSession } from "../../model/onnx-session.ts";
import type { DetectedFace, RgbImage } from "../../model/types.ts";
import { HAVE_LFW, readLfw } from "./support/lfw.ts";
import { PARITY_TIMEOUT_MS, loadReferenceGraphModel, maxAbsDifference } from "./support/tfjs-graph-reference.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

describe("BlazeFace decoding", () => {
  test("896 anchors: 16x16 cells of 2, then 8x8 cells of 6 (strides 16 and 32 at 256, 8 and 16 at 128)", () => {
    expect(blazeFaceAnchors(128).slice(510, 513)).toEqual([[124, 124], [124, 124], [8, 8]]);
    const anchors = blazeFaceAnchors(256);
    expect(anchors.length).toBe(896);
    expect(anchors.slice(0, 3)).toEqual([[8, 8], [8, 8], [24, 8]]);
    expect(anchors[511]).toEqual([248, 248]);
    expect(anchors[512]).toEqual([16, 16]);
    expect(anchors[895]).toEqual([240, 240]);
  });

  test("five points: eyes ordered by x, nose kept, mouth corners on the eye line's direction around the mouth centre", () => {
    const [leftEye, rightEye, nose, leftMouth, rightMouth] = fivePointsFromKeypoints([[140, 100], [100, 104], [120, 125], [121, 150], [80, 110], [160, 110]]);
    expect(leftEye).toEqual([100, 104]);
    expect(rightEye).toEqual([140, 100]);
    expect(nose).toEqual([120, 125]);
    expect((leftMouth![0] + rightMouth![0]) / 2).toBeCloseTo(121, 9);
    expect((leftMouth![1] + rightMouth![1]) / 2).toBeCloseTo(150, 9);
    // ArcFace template: mouth corners 29.18 apart for eyes 35.24 apart; here the eyes are hypot(40, 4) apart.
    expect(Math.hypot(rightMouth![0] - leftMouth![0], rightMouth![1] - leftMouth![1])).toBeCloseTo((Math.hypot(40, 4) * 29.1806) / 35.2372, 3);
    expect((rightMouth![1] - leftMouth![1]) / (rightMouth![0] - leftMouth![0])).toBeCloseTo(-4 / 40, 9);
  });

  test("weighted NMS merges overlapping candidates by score and keeps separate faces apart", () => {
    const box = (score: number, x: number, keypoint: number): Candidate => ({ score, x1: x, y1: 0, x2: x + 10, y2: 10, keypoints: [keypoint] });
    const kept = weightedNms([box(0.6, 1, 30), box(0.9, 0, 10), box(0.7, 100, 50)], 0.3, 10);
    expect(kept.map((c) => c.score)).toEqual([0.9, 0.7]);
    expect(kept[0]!.x1).toBeCloseTo(0.6 / 1.5, 9);
    expect(kept[0]!.keypoints[0]).toBeCloseTo((0.9 * 10 + 0.6 * 30) / 1.5, 9);
    expect(kept[1]).toEqual(box(0.7, 100, 50));
    expect(weightedNms([box(0.6, 1, 30), box(0.9, 0, 10), box(0.7, 100, 50)], 0.3, 1)).toHaveLength(1);
  });
});

describe.skipIf(!HAVE_LFW)("BlazeFace on ONNX Runtime", () => {
  let detector: BlazeFaceDetector;
  let photos: RgbImage[];
  beforeAll(async () => {
    detector = await BlazeFaceDetector.load(ONNX_DIR);
    photos = await Promise.all([readLfw("Aaron_Peirsol", 1), readLfw("Aaron_Sorkin", 1), readLfw("Abdoulaye_Wade", 4)]);
  });

  for (const [model, json] of [[BLAZEFACE_BACK, "blazeface.json"], [BLAZEFACE_FRONT, "blazeface-front.json"]] as const) {
    test(`${model.file} equals human's TensorFlow.js ${json} on a real photo (1e-4 of each output's scale)`, async () => {
      const size = model.inputSize;
      const input = await readLfw("Aaron_Peirsol", 2, { left: 0, top: 0, side: 250, size });
      const pixels = Float32Array.from(input.data, (value) => value / 127.5 - 1);
      const session = await openSession(join(ONNX_DIR, model.file));
      const outputs = await session.run({ input: new ort.Tensor("float32", pixels, [1, size, size, 3]) });
      const reference = (await loadReferenceGraphModel(HUMAN_MODELS_DIR, json)).run(pixels, [1, size, size, 3], ["Identity", "Identity_2", "Identity_1", "Identity_3"]);
      ["scores_16", "regressors_16", "scores_8", "regressors_8"].forEach((name, i) => {
        const expected = reference[i]!;
        const scale = Math.max(1, ...expected.map(Math.abs));
        // Logits reach several hundred, where float32 rounding alone differs by more than 1e-4 between two conv implementations.
        expect(maxAbsDifference(outputs[name]!.data as Float32Array, expected)).toBeLessThanOrEqual(1e-4 * scale);
      });
      const sigmoid = (values: Float32Array) => values.map((logit) => 1 / (1 + Math.exp(-logit)));
      expect(maxAbsDifference(sigmoid(outputs.scores_16!.data as Float32Array), sigmoid(reference[0]!))).toBeLessThanOrEqual(1e-4);
    }, PARITY_TIMEOUT_MS);
  }

  test("finds the one face of LFW photos, eyes and mouth where deep-funneled LFW puts them", async () => {
    for (const photo of photos) {
      const faces = await detector.detect(photo);
      expect(faces).toHaveLength(1);
      const [face] = faces as [DetectedFace];
      expect(face.score).toBeGreaterThan(0.8);
      expect(face.wholeImage).toBe(false);
      const [leftEye, rightEye, nose, leftMouth, rightMouth] = face.landmarks;
      for (const [, y] of [leftEye!, rightEye!]) expect(Math.abs(y - 112)).toBeLessThan(15);
      expect(leftEye![0]).toBeLessThan(125);
      expect(rightEye![0]).toBeGreaterThan(125);
      expect(nose![1]).toBeGreaterThan(leftEye![1]);
      expect(leftMouth![1]).toBeGreaterThan(nose![1]);
      expect(rightMouth![0]).toBeGreaterThan(leftMouth![0]);
      const { x, y, width, height } = face.box;
      for (const [px, py] of face.landmarks) {
        expect(px).toBeGreaterThan(x);
        expect(px).toBeLessThan(x + width);
        expect(py).toBeGreaterThan(y);
        expect(py).toBeLessThan(y + height);
      }
    }
  });

  test("a mirrored photo gives mirrored landmarks (left stays the smaller x)", async () => {
    const [face] = await detector.detect(photos[1]!);
    const [mirrored] = await detector.detect(flipHorizontal(photos[1]!));
    const width = photos[1]!.width;
    const expected = [1, 0, 2, 4, 3].map((i) => face!.landmarks[i]!);
    // BlazeFace's keypoints are coarse (a few pixels on a 250-pixel photo); swapped eyes would be ~45 pixels off.
    mirrored!.landmarks.forEach(([x, y], i) => {
      expect(Math.abs(width - 1 - x - expected[i]![0])).toBeLessThan(8);
      expect(Math.abs(y - expected[i]![1])).toBeLessThan(8);
    });
  });

  test("letterboxes a wide image: the face keeps its place in image pixels", async () => {
    const photo = photos[0]!;
    const wide: RgbImage = { width: 500, height: 250, data: new Uint8Array(500 * 250 * 3) };
    for (let y = 0; y < 250; y++) wide.data.set(photo.data.subarray(y * 250 * 3, (y + 1) * 250 * 3), (y * 500 + 200) * 3);
    const [face] = await detector.detect(photo);
    const [shifted] = await detector.detect(wide);
    expect(Math.abs(shifted!.landmarks[0]![0] - 200 - face!.landmarks[0]![0])).toBeLessThan(5);
    expect(Math.abs(shifted!.landmarks[0]![1] - face!.landmarks[0]![1])).toBeLessThan(5);
  });

  test("finds nothing in a flat grey image", async () => {
    expect(await detector.detect({ width: 200, height: 120, data: new Uint8Array(200 * 120 * 3).fill(128) })).toEqual([]);
  });
});
