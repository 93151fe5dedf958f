/** dlib's ResNet face descriptor (face-api's face_recognition_model converted to ONNX): 150x150 dlib face chips -> 128-d. */
import { join } from "node:path";
import { dlibFaceChipTemplate } from "../face-geometry.ts";
import { openSession, runFloat, type GraphOptimization, type OnnxSession } from "../onnx-session.ts";
import type { FaceEmbedder, Point, RgbImage } from "../types.ts";
import { cropBatch } from "./crop-batch.ts";
import { l2Normalise } from "./l2-normalise.ts";

export const DLIB_RESNET_FILE = "face-api-dlib-resnet.onnx";
const INPUT_SIZE = 150;
/** dlib's chips for this network: get_face_chip_details(shape, 150, 0.25). */
const CHIP_PADDING = 0.25;

export class DlibResNetEmbedder implements FaceEmbedder {
  readonly name = "dlib-resnet";
  readonly inputSize = INPUT_SIZE;
  readonly template: readonly Point[] = dlibFaceChipTemplate(INPUT_SIZE, CHIP_PADDING);
  readonly dimensions = 128;

  private constructor(private readonly session: OnnxSession) {}

  /** Opens the converted network (or its int8 version, `int8File(DLIB_RESNET_FILE)`) from the model:build output folder. */
  static async load(onnxDir: string, file = DLIB_RESNET_FILE, optimization: GraphOptimization = "all"): Promise<DlibResNetEmbedder> {
    return new DlibResNetEmbedder(await openSession(join(onnxDir, file), { optimization }));
  }

  /** All crops go through the network as one batch; the graph applies face-api's normalisation ((rgb - mean) / 255). */
  async embed(crops: RgbImage[]): Promise<Float32Array[]> {
    if (crops.length === 0) return [];
    const batch = cropBatch(this.name, crops, INPUT_SIZE);
    const descriptors = await runFloat(this.session, batch, [crops.length, INPUT_SIZE, INPUT_SIZE, 3]);
    return crops.map((_, i) => l2Normalise(descriptors.slice(i * this.dimensions, (i + 1) * this.dimensions)));
  }
}
