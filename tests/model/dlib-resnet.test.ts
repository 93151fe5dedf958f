import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { alignFace } from "../../model/align.ts";
import { ONNX_DIR } from "../../model/onnx-session.ts";
import { dlibFaceChipTemplate } from "../../model/face-geometry.ts";
import { DLIB_RESNET_FILE, DlibResNetEmbedder } from "../../model/embedders/dlib-resnet.ts";
import { Landmark68 } from "../../model/landmarkers/landmark68.ts";
import { openSession, runFloat } from "../../model/onnx-session.ts";
import type { RgbImage } from "../../model/types.ts";
import { loadReferenceRecognitionNet, maxAbsDifference, referenceForward } from "./support/face-api-reference.ts";
import { HAVE_LFW, readLfw } from "./support/lfw.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

/** The central part of a deep-funneled LFW photo (already roughly aligned), as a 150x150 crop. */
const centreCrop = (name: string, number: number) => readLfw(name, number, { left: 55, top: 60, side: 140, size: 150 });

function cosine(a: Float32Array, b: Float32Array): number {
  return a.reduce((sum, value, i) => sum + value * b[i]!, 0);
}

describe("dlib face chip template", () => {
  test("is dlib's mean face in a 150x150 chip with padding 0.25: mirror-symmetric eyes and mouth, nose between", () => {
    const [leftEye, rightEye, nose, leftMouth, rightMouth] = dlibFaceChipTemplate(150, 0.25);
    // mean of mean_face_shape_x[19..24] = 0.2254918, y = 0.2159903; chip = 150 * (0.25 + mean) / 1.5
    expect(leftEye![0]).toBeCloseTo(47.549, 3);
    expect(leftEye![1]).toBeCloseTo(46.599, 3);
    expect(leftEye![1]).toBeCloseTo(rightEye![1], 9);
    expect(leftMouth![1]).toBeCloseTo(rightMouth![1], 9);
    const midline = 100 * (0.25 + 0.490127);
    expect((leftEye![0] + rightEye![0]) / 2).toBeCloseTo(midline, 3);
    expect((leftMouth![0] + rightMouth![0]) / 2).toBeCloseTo(midline, 3);
    expect(nose).toEqual([midline, 100 * (0.25 + 0.515625)]);
  });
});

describe.skipIf(!HAVE_LFW)("dlib ResNet on ONNX Runtime", () => {
  let crops: RgbImage[];
  beforeAll(async () => {
    crops = await Promise.all([centreCrop("Aaron_Peirsol", 1), centreCrop("Aaron_Peirsol", 2), centreCrop("Aaron_Sorkin", 1)]);
  });

  test("equals face-api's TensorFlow.js network within 1e-4 on real photos", async () => {
    const pixels = new Float32Array(crops.length * 150 * 150 * 3);
    crops.forEach((crop, i) => pixels.set(crop.data, i * 150 * 150 * 3));
    const session = await openSession(join(ONNX_DIR, DLIB_RESNET_FILE));
    const onnx = await runFloat(session, pixels, [crops.length, 150, 150, 3]);
    const reference = await referenceForward(await loadReferenceRecognitionNet(), pixels, 150);
    expect(onnx.length).toBe(crops.length * 128);
    expect(maxAbsDifference(onnx, reference)).toBeLessThanOrEqual(1e-4);

    const embedder = await DlibResNetEmbedder.load(ONNX_DIR);
    const [first] = await embedder.embed([crops[0]!]);
    const raw = reference.slice(0, 128);
    const norm = Math.hypot(...raw);
    expect(maxAbsDifference(first!, raw.map((value) => value / norm))).toBeLessThanOrEqual(1e-5);
  });

  test("aligned photos: unit-length embeddings, the same person far closer than strangers", async () => {
    const embedder = await DlibResNetEmbedder.load(ONNX_DIR);
    const landmarker = await Landmark68.load(ONNX_DIR);
    const aligned = async (name: string, number: number) => {
      const photo = await readLfw(name, number);
      const face = await landmarker.refine(photo, { box: { x: 75, y: 75, width: 100, height: 100 }, score: 1, landmarks: [], wholeImage: false });
      return alignFace(photo, face.landmarks, embedder.template, embedder.inputSize);
    };
    const crops = await Promise.all([
      aligned("Aaron_Peirsol", 1),
      aligned("Aaron_Peirsol", 2),
      aligned("Aaron_Peirsol", 3),
      aligned("Aaron_Sorkin", 1),
      aligned("AJ_Cook", 1),
    ]);
    const [peirsol1, peirsol2, peirsol3, sorkin, cook] = await embedder.embed(crops);
    for (const embedding of [peirsol1!, peirsol2!, peirsol3!, sorkin!, cook!]) expect(Math.hypot(...embedding)).toBeCloseTo(1, 5);
    const same = [cosine(peirsol1!, peirsol2!), cosine(peirsol1!, peirsol3!), cosine(peirsol2!, peirsol3!)];
    const different = [cosine(peirsol1!, sorkin!), cosine(peirsol1!, cook!), cosine(sorkin!, cook!), cosine(peirsol2!, cook!)];
    // Measured: same 0.968-0.978, different 0.80-0.87; the LFW-calibrated threshold is about 0.91.
    expect(Math.min(...same)).toBeGreaterThan(0.93);
    expect(Math.max(...different)).toBeLessThan(0.9);
  });

  test("refuses crops of the wrong size", async () => {
    const embedder = await DlibResNetEmbedder.load(ONNX_DIR);
    await expect(embedder.embed([{ data: new Uint8Array(112 * 112 * 3), width: 112, height: 112 }])).rejects.toThrow("150x150");
  });
});
