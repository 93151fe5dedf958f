import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { ONNX_DIR } from "../../model/onnx-session.ts";
import { SSD_MOBILENET_FILE, SsdMobilenetDetector } from "../../model/detectors/ssd-mobilenet.ts";
import { paddedSquare } from "../../model/detectors/face-api-input.ts";
import { openSession } from "../../model/onnx-session.ts";
import type { RgbImage } from "../../model/types.ts";
import * as ort from "onnxruntime-node";
import { maxAbsDifference, referenceSsdForward } from "./support/face-api-reference.ts";
import { expectOneCentredFace } from "./support/detections.ts";
import { HAVE_LFW, readSamplePhotos } from "./support/lfw.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

describe.skipIf(!HAVE_LFW)("SSD MobileNet v1 face detector on ONNX Runtime", () => {
  let photos: RgbImage[];
  beforeAll(async () => {
    photos = await readSamplePhotos();
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
    for (const photo of photos) expectOneCentredFace(await detector.detect(photo));
  });
});
