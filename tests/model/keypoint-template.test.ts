import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { BLAZEFACE_FRONT, BlazeFaceDetector } from "../../model/detectors/blazeface.ts";
import { KEYPOINT_TEMPLATE_PATH, KeypointTemplateLandmarker, predictFivePoints, type KeypointTemplate } from "../../model/landmarkers/keypoint-template.ts";
import { Landmark68 } from "../../model/landmarkers/landmark68.ts";
import { ONNX_DIR } from "../../model/onnx-session.ts";
import { loadParts } from "../../model/registry.ts";
import type { Box, DetectedFace, Point, RgbImage } from "../../model/types.ts";
import { HAVE_LFW, readSamplePhotos } from "./support/lfw.ts";

// Networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

const meanDistance = (a: readonly Point[], b: readonly Point[]) => a.reduce((sum, point, i) => sum + Math.hypot(point[0] - b[i]![0], point[1] - b[i]![1]), 0) / a.length;

describe("keypoint-template landmarker", () => {
  let template: KeypointTemplate;
  beforeAll(async () => {
    template = await Bun.file(KEYPOINT_TEMPLATE_PATH).json();
  });

  test("is registered under its name", async () => {
    const parts = await loadParts({ detector: "none", landmarker: "keypoint-template", embedder: "dlib-resnet-int8", flip: true, workers: 1, maxPixels: 1 }, ONNX_DIR);
    expect(parts.landmarker?.name).toBe("keypoint-template");
  });

  test("scaling and shifting the detector's points and box scales and shifts its points alike", () => {
    const five: Point[] = [[100, 110], [140, 108], [121, 135], [104, 158], [138, 156]];
    const box: Box = { x: 80, y: 80, width: 85, height: 95 };
    const move = ([x, y]: Point): Point => [2.5 * x + 31, 2.5 * y - 17];
    const moved = predictFivePoints(template, five.map(move), { x: 2.5 * box.x + 31, y: 2.5 * box.y - 17, width: 2.5 * box.width, height: 2.5 * box.height });
    expect(meanDistance(moved, predictFivePoints(template, five, box).map(move))).toBeLessThan(1e-9);
  });

  test("leaves a face without five detector points as it is", async () => {
    const face: DetectedFace = { box: { x: 0, y: 0, width: 10, height: 10 }, score: 1, landmarks: [], wholeImage: false };
    const landmarker = await KeypointTemplateLandmarker.load();
    expect(await landmarker.refine({ data: new Uint8Array(300), width: 10, height: 10 }, face)).toEqual(face);
  });

  describe.skipIf(!HAVE_LFW)("on LFW photos", () => {
    let photos: RgbImage[];
    beforeAll(async () => {
      photos = await readSamplePhotos();
    });

    test("puts BlazeFace's points much nearer landmark68's than BlazeFace does", async () => {
      const detector = await BlazeFaceDetector.load(ONNX_DIR, { model: BLAZEFACE_FRONT });
      const [landmark68, keypointTemplate] = await Promise.all([Landmark68.load(ONNX_DIR), KeypointTemplateLandmarker.load()]);
      for (const photo of photos) {
        const [face] = await detector.detect(photo);
        const reference = (await landmark68.refine(photo, face!)).landmarks;
        const predicted = (await keypointTemplate.refine(photo, face!)).landmarks;
        // lfw-devtrain's held-out mean alignment error falls from 4.7 to 2.6 chip pixels (model/README.md).
        expect(meanDistance(predicted, reference)).toBeLessThan(0.7 * meanDistance(face!.landmarks, reference));
      }
    });
  });
});
