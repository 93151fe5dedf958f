import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { applySimilarity } from "../../model/align.ts";
import { ONNX_DIR } from "../../model/onnx-session.ts";
import { HUMAN_MODELS_DIR } from "../../model/build/human-models.ts";
import { BlazeFaceDetector } from "../../model/detectors/blazeface.ts";
import { FACEMESH_FILE, FaceMeshLandmarker, meshFivePoints, squareToCrop } from "../../model/landmarkers/facemesh.ts";
import { openSession } from "../../model/onnx-session.ts";
import type { DetectedFace, RgbImage } from "../../model/types.ts";
import { HAVE_LFW, readLfw } from "./support/lfw.ts";
import { PARITY_TIMEOUT_MS, loadReferenceGraphModel, maxAbsDifference } from "./support/tfjs-graph-reference.ts";
import * as ort from "onnxruntime-node";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

test("a rotated square maps onto the crop: centre to the middle, its eye line to the horizontal", () => {
  const toCrop = squareToCrop({ centreX: 100, centreY: 50, side: 96, angle: Math.PI / 6 }, 192);
  const [cx, cy] = applySimilarity(toCrop, [100, 50]);
  expect(cx).toBeCloseTo(96, 9);
  expect(cy).toBeCloseTo(96, 9);
  const [x, y] = applySimilarity(toCrop, [100 + 10 * Math.cos(Math.PI / 6), 50 + 10 * Math.sin(Math.PI / 6)]);
  expect(x).toBeCloseTo(96 + 20, 9);
  expect(y).toBeCloseTo(96, 9);
});

test("five points: eye contour means, nose tip 1, mouth corners 61 and 291", () => {
  const points = Array.from({ length: 468 }, (_, i) => [i, -i] as const);
  const [rightEye, leftEye, nose, mouthA, mouthB] = meshFivePoints(points);
  const mean = (indices: number[]) => indices.reduce((a, b) => a + b, 0) / indices.length;
  expect(rightEye![0]).toBeCloseTo(mean([246, 161, 160, 159, 158, 157, 173, 33, 7, 163, 144, 145, 153, 154, 155, 133]), 9);
  expect(leftEye![1]).toBeCloseTo(-mean([466, 388, 387, 386, 385, 384, 398, 263, 249, 390, 373, 374, 380, 381, 382, 362]), 9);
  expect([nose, mouthA, mouthB]).toEqual([[1, -1], [61, -61], [291, -291]]);
});

describe.skipIf(!HAVE_LFW)("FaceMesh on ONNX Runtime", () => {
  let photos: RgbImage[];
  let faces: DetectedFace[];
  let landmarker: FaceMeshLandmarker;
  beforeAll(async () => {
    const detector = await BlazeFaceDetector.load(ONNX_DIR);
    landmarker = await FaceMeshLandmarker.load(ONNX_DIR);
    photos = await Promise.all([readLfw("Aaron_Peirsol", 1), readLfw("Aaron_Sorkin", 1), readLfw("Abdoulaye_Wade", 4)]);
    faces = await Promise.all(photos.map(async (photo) => (await detector.detect(photo))[0]!));
  });

  test("equals human's TensorFlow.js FaceMesh within 1e-4 (of the output's scale) on a real face crop", async () => {
    const crop = await readLfw("Aaron_Peirsol", 2, { left: 50, top: 45, side: 150, size: 192 });
    const pixels = Float32Array.from(crop.data, (value) => value / 255);
    const session = await openSession(join(ONNX_DIR, FACEMESH_FILE));
    const outputs = await session.run({ input: new ort.Tensor("float32", pixels, [1, 192, 192, 3]) });
    const [mesh, flag] = (await loadReferenceGraphModel(HUMAN_MODELS_DIR, "facemesh.json")).run(pixels, [1, 192, 192, 3], ["Identity_2", "Identity_1"]);
    // Mesh coordinates are crop pixels (up to 192), where float32 rounding alone exceeds 1e-4 between two implementations.
    const scale = Math.max(1, ...mesh!.map(Math.abs));
    expect(maxAbsDifference(outputs.mesh!.data as Float32Array, mesh!)).toBeLessThanOrEqual(1e-4 * scale);
    expect(maxAbsDifference(outputs.face_flag!.data as Float32Array, flag!)).toBeLessThanOrEqual(1e-4);
  }, PARITY_TIMEOUT_MS);

  test("refines BlazeFace's coarse points: confident mesh, mouth corners on the lips, eyes level, within a few pixels of BlazeFace's eyes", async () => {
    for (const [i, photo] of photos.entries()) {
      const face = faces[i]!;
      const mesh = await landmarker.locate(photo, face);
      expect(mesh.confidence).toBeGreaterThan(0.9);
      const refined = await landmarker.refine(photo, face);
      expect(refined.box).toEqual(face.box);
      const [leftEye, rightEye, nose, leftMouth, rightMouth] = refined.landmarks;
      expect(leftEye![0]).toBeLessThan(rightEye![0]);
      expect(leftMouth![0]).toBeLessThan(rightMouth![0]);
      expect(Math.abs(leftEye![1] - rightEye![1])).toBeLessThan(8);
      expect(nose![1]).toBeGreaterThan(leftEye![1] + 15);
      expect(leftMouth![1]).toBeGreaterThan(nose![1] + 5);
      for (const k of [0, 1, 2]) expect(Math.hypot(refined.landmarks[k]![0] - face.landmarks[k]![0], refined.landmarks[k]![1] - face.landmarks[k]![1])).toBeLessThan(10);
    }
  });

  test("follows a face turned upside down (the crop is rotated by the eye line)", async () => {
    const photo = photos[0]!;
    const turned: RgbImage = { width: photo.width, height: photo.height, data: new Uint8Array(photo.data.length) };
    const pixels = photo.width * photo.height;
    for (let p = 0; p < pixels; p++) turned.data.set(photo.data.subarray(p * 3, p * 3 + 3), (pixels - 1 - p) * 3);
    const flip = ([x, y]: readonly [number, number]) => [photo.width - 1 - x, photo.height - 1 - y] as const;
    const face = faces[0]!;
    const turnedFace: DetectedFace = {
      ...face,
      box: { x: photo.width - face.box.x - face.box.width, y: photo.height - face.box.y - face.box.height, width: face.box.width, height: face.box.height },
      landmarks: face.landmarks.map(flip),
    };
    const upright = (await landmarker.refine(photo, face)).landmarks;
    const upsideDown = (await landmarker.refine(turned, turnedFace)).landmarks.map(flip);
    upright.forEach(([x, y], k) => expect(Math.hypot(x - upsideDown[k]![0], y - upsideDown[k]![1])).toBeLessThan(3));
  });
});
