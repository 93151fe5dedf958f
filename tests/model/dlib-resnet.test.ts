import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ONNX_DIR } from "../../model/build/index.ts";
import { dlibFaceChipTemplate } from "../../model/embedders/dlib-face-chip.ts";
import { DLIB_RESNET_FILE, DlibResNetEmbedder } from "../../model/embedders/dlib-resnet.ts";
import { openSession, runFloat } from "../../model/onnx-session.ts";
import type { RgbImage } from "../../model/types.ts";
import { loadReferenceRecognitionNet, maxAbsDifference, referenceForward } from "./support/face-api-reference.ts";
import { HAVE_LFW, readLfw } from "./support/lfw.ts";

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

  test("embeddings are unit length and the same person is closer than a stranger", async () => {
    const embedder = await DlibResNetEmbedder.load(ONNX_DIR);
    const [peirsol1, peirsol2, sorkin] = await embedder.embed(crops);
    for (const embedding of [peirsol1!, peirsol2!, sorkin!]) expect(Math.hypot(...embedding)).toBeCloseTo(1, 5);
    expect(cosine(peirsol1!, peirsol2!)).toBeGreaterThan(cosine(peirsol1!, sorkin!));
    expect(cosine(peirsol1!, peirsol2!)).toBeGreaterThan(cosine(peirsol2!, sorkin!));
  });

  test("refuses crops of the wrong size", async () => {
    const embedder = await DlibResNetEmbedder.load(ONNX_DIR);
    await expect(embedder.embed([{ data: new Uint8Array(112 * 112 * 3), width: 112, height: 112 }])).rejects.toThrow("150x150");
  });
});
