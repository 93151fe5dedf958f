import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ONNX_DIR } from "../../model/build/index.ts";
import { SSD_MOBILENET_FILE, SsdMobilenetDetector } from "../../model/detectors/ssd-mobilenet.ts";
import { paddedSquare } from "../../model/detectors/face-api-input.ts";
import { openSession } from "../../model/onnx-session.ts";
import type { RgbImage } from "../../model/types.ts";
import * as ort from "onnxruntime-node";
import { maxAbsDifference, referenceSsdForward } from "./support/face-api-reference.ts";
import { HAVE_LFW, readLfw } from "./support/lfw.ts";

describe.skipIf(!HAVE_LFW)("SSD MobileNet v1 face detector on ONNX Runtime", () => {
  let photos: RgbImage[];
  beforeAll(async () => {
    photos = await Promise.all([readLfw("Aaron_Peirsol", 1), readLfw("Aaron_Sorkin", 1), readLfw("AJ_Cook", 1)]);
  });

  test("decoded boxes and scores equal face-api's TensorFlow.js network within 1e-4 on real photos", async () => {
    const size = 512;
    const pair = photos.slice(0, 1);
    const pixels = new Float32Array(pair.length * size * size * 3);
    pair.forEach((photo, i) => pixels.set(paddedSquare(photo, size).pixels, i * size * size * 3));
    const session = await openSession(join(ONNX_DIR, SSD_MOBILENET_FILE));
    const outputs = await session.run({ pixels: new ort.Tensor("float32", pixels, [pair.length, size, size, 3]) });
    const reference = await referenceSsdForward(pixels, size);
    expect(outputs.scores!.dims).toEqual([1, 5118]);
    expect(maxAbsDifference(outputs.boxes!.data as Float32Array, reference.boxes)).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDifference(outputs.scores!.data as Float32Array, reference.scores)).toBeLessThanOrEqual(1e-4);
  });

  test("finds the one face of an LFW photo, centred, with coarse points inside its box", async () => {
    const detector = await SsdMobilenetDetector.load(ONNX_DIR);
    for (const photo of photos) {
      const [face, ...others] = await detector.detect(photo);
      expect(others).toEqual([]);
      const { x, y, width, height } = face!.box;
      expect(face!.score).toBeGreaterThan(0.5);
      expect(Math.abs(x + width / 2 - 125)).toBeLessThan(25);
      expect(Math.abs(y + height / 2 - 125)).toBeLessThan(25);
      expect(width).toBeGreaterThan(70);
      expect(width).toBeLessThan(200);
      for (const [px, py] of face!.landmarks) {
        expect(px).toBeGreaterThan(x);
        expect(px).toBeLessThan(x + width);
        expect(py).toBeGreaterThan(y);
        expect(py).toBeLessThan(y + height);
      }
    }
  });
});
