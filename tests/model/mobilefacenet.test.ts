import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { alignFace } from "../../model/align.ts";
import { ONNX_DIR } from "../../model/onnx-session.ts";
import { HUMAN_MODELS_DIR } from "../../model/build/human-models.ts";
import { BlazeFaceDetector } from "../../model/detectors/blazeface.ts";
import { ARCFACE_TEMPLATE_112 } from "../../model/embedders/arcface-template.ts";
import { MOBILEFACENET_FILE, MobileFaceNetEmbedder } from "../../model/embedders/mobilefacenet.ts";
import { openSession, runFloat } from "../../model/onnx-session.ts";
import type { RgbImage } from "../../model/types.ts";
import { HAVE_LFW, readLfw } from "./support/lfw.ts";
import { PARITY_TIMEOUT_MS, loadReferenceGraphModel, maxAbsDifference } from "./support/tfjs-graph-reference.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

const cosine = (a: Float32Array, b: Float32Array) => a.reduce((sum, value, i) => sum + value * b[i]!, 0);

test("the ArcFace template: eyes level, mouth corners level, the nose on the face's midline", () => {
  const [leftEye, rightEye, nose, leftMouth, rightMouth] = ARCFACE_TEMPLATE_112;
  expect(Math.abs(leftEye![1] - rightEye![1])).toBeLessThan(0.25);
  expect(Math.abs(leftMouth![1] - rightMouth![1])).toBeLessThan(0.25);
  expect(Math.abs(nose![0] - (leftEye![0] + rightEye![0]) / 2)).toBeLessThan(0.2);
  expect(rightEye![0] - leftEye![0]).toBeCloseTo(35.2372, 4);
});

describe.skipIf(!HAVE_LFW)("MobileFaceNet on ONNX Runtime", () => {
  let embedder: MobileFaceNetEmbedder;
  /** Aaron Peirsol 1, 2 and Aaron Sorkin 1, aligned with BlazeFace's five points to the ArcFace template. */
  let crops: RgbImage[];
  beforeAll(async () => {
    embedder = await MobileFaceNetEmbedder.load(ONNX_DIR);
    const detector = await BlazeFaceDetector.load(ONNX_DIR);
    crops = await Promise.all(
      ([["Aaron_Peirsol", 1], ["Aaron_Peirsol", 2], ["Aaron_Sorkin", 1]] as const).map(async ([name, number]) => {
        const photo = await readLfw(name, number);
        const [face] = await detector.detect(photo);
        return alignFace(photo, face!.landmarks, embedder.template, embedder.inputSize);
      }),
    );
  });

  test("equals human's TensorFlow.js MobileFaceNet within 1e-4 on aligned real faces", async () => {
    const pixels = new Float32Array(crops.length * 112 * 112 * 3);
    crops.forEach((crop, i) => pixels.set(Float32Array.from(crop.data, (value) => value / 255), i * 112 * 112 * 3));
    const session = await openSession(join(ONNX_DIR, MOBILEFACENET_FILE));
    const onnx = await runFloat(session, pixels, [crops.length, 112, 112, 3]);
    const [reference] = (await loadReferenceGraphModel(HUMAN_MODELS_DIR, "mobilefacenet.json")).run(pixels, [crops.length, 112, 112, 3], ["embeddings"]);
    expect(onnx.length).toBe(crops.length * 192);
    expect(maxAbsDifference(onnx, reference!)).toBeLessThanOrEqual(1e-4);

    const embeddings = await embedder.embed(crops);
    expect(maxAbsDifference(embeddings[2]!, reference!.slice(2 * 192, 3 * 192))).toBeLessThanOrEqual(1e-4);
  }, PARITY_TIMEOUT_MS);

  test("embeddings are 192-d, unit length, and the same person is closer than a stranger", async () => {
    const [peirsol1, peirsol2, sorkin] = await embedder.embed(crops);
    for (const embedding of [peirsol1!, peirsol2!, sorkin!]) {
      expect(embedding.length).toBe(192);
      expect(Math.hypot(...embedding)).toBeCloseTo(1, 5);
    }
    expect(cosine(peirsol1!, peirsol2!)).toBeGreaterThan(cosine(peirsol1!, sorkin!));
    expect(cosine(peirsol1!, peirsol2!)).toBeGreaterThan(cosine(peirsol2!, sorkin!));
  });

  test("refuses crops of the wrong size", async () => {
    await expect(embedder.embed([{ data: new Uint8Array(150 * 150 * 3), width: 150, height: 150 }])).rejects.toThrow("112x112");
  });
});
