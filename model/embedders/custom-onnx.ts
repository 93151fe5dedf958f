/** A user-supplied ONNX embedder: one image input (NCHW or NHWC, RGB or BGR, (pixel - mean) / std), one embedding output. */
import { openSession, runFloat, type OnnxSession } from "../onnx-session.ts";
import type { CustomEmbedderConfig } from "../config.ts";
import type { FaceEmbedder, Point, RgbImage } from "../types.ts";
import { l2Normalise } from "./l2-normalise.ts";

export class CustomOnnxEmbedder implements FaceEmbedder {
  readonly name = "custom";
  readonly inputSize: number;
  readonly template: readonly Point[];

  private constructor(
    private readonly session: OnnxSession,
    private readonly settings: CustomEmbedderConfig,
    readonly dimensions: number,
  ) {
    this.inputSize = settings.inputSize;
    this.template = settings.template;
  }

  /** Opens the model and runs it once on a black crop to learn the embedding's length. */
  static async load(settings: CustomEmbedderConfig): Promise<CustomOnnxEmbedder> {
    const session = await openSession(settings.path);
    const size = settings.inputSize;
    const probe = await runFloat(session, new Float32Array(size * size * 3), inputDims(settings, 1));
    return new CustomOnnxEmbedder(session, settings, probe.length);
  }

  async embed(crops: RgbImage[]): Promise<Float32Array[]> {
    if (crops.length === 0) return [];
    const { inputSize: size, layout, channels, mean, std } = this.settings;
    const plane = size * size;
    const batch = new Float32Array(crops.length * plane * 3);
    crops.forEach((crop, n) => {
      if (crop.width !== size || crop.height !== size) throw new Error(`the custom embedder takes ${size}x${size} crops, got ${crop.width}x${crop.height}`);
      const base = n * plane * 3;
      for (let p = 0; p < plane; p++) {
        for (let c = 0; c < 3; c++) {
          const source = channels === "rgb" ? c : 2 - c;
          const value = (crop.data[p * 3 + source]! - mean[c]!) / std[c]!;
          batch[layout === "nchw" ? base + c * plane + p : base + p * 3 + c] = value;
        }
      }
    });
    const output = await runFloat(this.session, batch, inputDims(this.settings, crops.length));
    return crops.map((_, n) => l2Normalise(output.slice(n * this.dimensions, (n + 1) * this.dimensions)));
  }
}

function inputDims(settings: CustomEmbedderConfig, batch: number): number[] {
  const size = settings.inputSize;
  return settings.layout === "nchw" ? [batch, 3, size, size] : [batch, size, size, 3];
}
