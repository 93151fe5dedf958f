import { expect, test } from "bun:test";
import { join } from "node:path";
import { ONNX_DIR } from "../../model/onnx-session.ts";
import { CustomOnnxEmbedder } from "../../model/embedders/custom-onnx.ts";
import { DLIB_RESNET_FILE, DlibResNetEmbedder } from "../../model/embedders/dlib-resnet.ts";
import { thresholdFor } from "../../model/registry.ts";
import { Value } from "@sinclair/typebox/value";
import { ModelConfigSchema, type ModelConfig } from "../../model/config.ts";
import type { RgbImage } from "../../model/types.ts";

function noise(size: number, seed: number): RgbImage {
  let state = seed;
  const data = Uint8Array.from({ length: size * size * 3 }, () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % 256;
  });
  return { data, width: size, height: size };
}

test("a custom ONNX embedder set up like the built-in dlib one gives the same embeddings", async () => {
  const builtIn = await DlibResNetEmbedder.load(ONNX_DIR);
  // The converted dlib graph takes NHWC RGB 0..255 and normalises inside, so mean 0 and std 1 leave the pixels as they are.
  const custom = await CustomOnnxEmbedder.load({
    path: join(ONNX_DIR, DLIB_RESNET_FILE),
    inputSize: 150,
    layout: "nhwc",
    channels: "rgb",
    mean: [0, 0, 0],
    std: [1, 1, 1],
    template: builtIn.template.map(([x, y]) => [x, y] as [number, number]),
    threshold: 0.5,
  });
  expect(custom.dimensions).toBe(128);
  const crops = [noise(150, 1), noise(150, 2)];
  const [expected, actual] = [await builtIn.embed(crops), await custom.embed(crops)];
  for (let i = 0; i < crops.length; i++) {
    for (let d = 0; d < 128; d++) expect(actual[i]![d]!).toBeCloseTo(expected[i]![d]!, 5);
  }
  await expect(custom.embed([noise(112, 3)])).rejects.toThrow(/150x150/);
});

test("thresholdFor: configured, else the custom embedder's, else the calibrated one; a custom embedder needs its settings", () => {
  const config = Value.Default(ModelConfigSchema, {}) as ModelConfig;
  expect(thresholdFor(config).at(1)).toBe(0.9307); // the default embedder, dlib-resnet-int8
  expect(thresholdFor({ ...config, threshold: 0.8 }).at(1000)).toBe(0.8);
  expect(() => thresholdFor({ ...config, embedder: "mobilefacenet" })).toThrow(/unknown embedder/);
  expect(() => thresholdFor({ ...config, embedder: "custom" })).toThrow(/model.threshold/);
  expect(() => thresholdFor({ ...config, embedder: "nobody" })).toThrow(/unknown embedder/);
});
