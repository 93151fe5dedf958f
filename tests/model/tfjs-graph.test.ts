import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { convertGraphModel, permuteData, readGraphModel, type ConversionSpec, type TfjsNode } from "../../model/build/tfjs-graph.ts";
import { decodeWeight, halfToFloat, type WeightsManifestEntry } from "../../model/build/tfjs-weights.ts";
import { PARITY_TIMEOUT_MS, loadReferenceGraphModel, maxAbsDifference } from "./support/tfjs-graph-reference.ts";

describe("tfjs weights", () => {
  test("float16 bits decode to their IEEE values", () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x3555)).toBeCloseTo(0.333251953125, 12);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x7c00)).toBe(Number.POSITIVE_INFINITY);
  });

  test("each weight takes its own byte size: uint8 (q * scale + min), float16, int32 and float32 side by side", () => {
    const bytes = new DataView(new ArrayBuffer(3 + 4 + 8 + 4));
    [0, 10, 255].forEach((q, i) => bytes.setUint8(i, q));
    bytes.setUint16(3, 0x3c00, true);
    bytes.setUint16(5, 0xc000, true);
    bytes.setInt32(7, -7, true);
    bytes.setInt32(11, 42, true);
    bytes.setFloat32(15, 0.25, true);
    const entries: WeightsManifestEntry[] = [
      { name: "q", shape: [3], dtype: "float32", quantization: { dtype: "uint8", scale: 0.5, min: -1 } },
      { name: "h", shape: [2], dtype: "float32", quantization: { dtype: "float16" } },
      { name: "i", shape: [2], dtype: "int32" },
      { name: "f", shape: [], dtype: "float32" },
    ];
    let offset = 0;
    const decoded = entries.map((entry) => {
      const { weight, byteLength } = decodeWeight(entry, bytes, offset);
      offset += byteLength;
      return Array.from(weight.data);
    });
    expect(decoded).toEqual([[-1, 4, 126.5], [1, -2], [-7, 42], [0.25]]);
    expect(offset).toBe(bytes.byteLength);
  });

  test("permuteData moves axes (NHWC [1,2,2,3] -> NCHW)", () => {
    const data = Float32Array.from({ length: 12 }, (_, i) => i);
    expect(Array.from(permuteData(data, [1, 2, 2, 3], [0, 3, 1, 2]))).toEqual([0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
  });
});

/** A small GraphModel written to disk with the ops and weight encodings the converter maps, to run through tfjs and ORT. */
function syntheticModel(dir: string): ConversionSpec {
  const random = seeded(7);
  const floats = (n: number, scale = 0.5) => Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale);
  const parts: Uint8Array[] = [];
  const weights: WeightsManifestEntry[] = [];
  const nodes: TfjsNode[] = [{ name: "image", op: "Placeholder", attr: { shape: { shape: { dim: [{ size: "-1" }, { size: "8" }, { size: "8" }, { size: "3" }] } } } }];
  const addConst = (name: string, shape: number[], encoding: "float32" | "uint8" | "float16" | "int32", values?: number[]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    if (encoding === "int32") {
      parts.push(new Uint8Array(Int32Array.from(values!).buffer));
      weights.push({ name, shape, dtype: "int32" });
    } else if (encoding === "uint8") {
      parts.push(Uint8Array.from({ length: size }, () => Math.floor(random() * 256)));
      weights.push({ name, shape, dtype: "float32", quantization: { dtype: "uint8", scale: 0.004, min: -0.5 } });
    } else if (encoding === "float16") {
      // Normal halves of magnitude 2^-4 .. 2^-1 with either sign.
      const bits = Uint16Array.from({ length: size }, () => (random() < 0.5 ? 0x8000 : 0) | ((11 + Math.floor(random() * 3)) << 10) | Math.floor(random() * 1024));
      parts.push(new Uint8Array(bits.buffer));
      weights.push({ name, shape, dtype: "float32", quantization: { dtype: "float16" } });
    } else {
      parts.push(new Uint8Array(floats(size).buffer));
      weights.push({ name, shape, dtype: "float32" });
    }
    nodes.push({ name, op: "Const" });
    return name;
  };
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const ints = (...values: number[]) => ({ list: { i: values.map(String) } });
  const convAttr = { dilations: ints(1, 1, 1, 1), data_format: { s: b64("NHWC") } };
  const op = (name: string, opType: string, input: string[], attr: TfjsNode["attr"] = {}) => {
    nodes.push({ name, op: opType, input, attr: opType.includes("Conv") ? { ...convAttr, ...attr } : attr });
    return name;
  };
  const same = { padding: { s: b64("SAME") }, strides: ints(1, 2, 2, 1) };
  const conv = op("conv", "_FusedConv2D", ["image", addConst("filter", [3, 3, 3, 4], "uint8"), addConst("bias", [4], "float32")], {
    ...same,
    fused_ops: { list: { s: [b64("BiasAdd"), b64("Relu6")] } },
    num_args: { i: "1" },
  });
  const depthwise = op("depthwise", "DepthwiseConv2dNative", [conv, addConst("depthwise_filter", [3, 3, 4, 2], "float16")], {
    padding: { s: b64("SAME") },
    strides: ints(1, 1, 1, 1),
  });
  const prelu = op("prelu", "Prelu", [depthwise, addConst("alpha", [1, 1, 8], "float32")]);
  const fused = op("fused_prelu", "_FusedConv2D", ["prelu", addConst("pointwise", [1, 1, 8, 8], "float32"), addConst("bias2", [8], "float32"), addConst("alpha2", [8], "float32")], {
    padding: { s: b64("VALID") },
    strides: ints(1, 1, 1, 1),
    fused_ops: { list: { s: [b64("BiasAdd"), b64("Prelu")] } },
    num_args: { i: "2" },
  });
  const residual = op("residual", "AddV2", [fused, prelu]);
  const scaled = op("scaled", "Mul", [residual, addConst("scale", [8], "float32")]);
  const padded = op("padded", "Pad", [scaled, addConst("paddings", [4, 2], "int32", [0, 0, 1, 0, 0, 1, 0, 4])]);
  const pooled = op("pooled", "MaxPool", [padded], { padding: { s: b64("SAME") }, ksize: ints(1, 2, 2, 1), strides: ints(1, 2, 2, 1) });
  const joined = op("joined", "ConcatV2", [pooled, pooled, addConst("axis", [], "int32", [-1])]);
  const sigmoid = op("sigmoid", "Sigmoid", [joined]);
  op("mean", "Mean", [sigmoid, addConst("mean_axes", [2], "int32", [1, 2])], { keep_dims: { b: false } });
  op("flat", "Reshape", [sigmoid, addConst("flat_shape", [2], "int32", [-1, 216])]);

  const bytes = Buffer.concat(parts);
  writeFileSync(join(dir, "model.bin"), bytes);
  writeFileSync(join(dir, "model.json"), JSON.stringify({ format: "graph-model", modelTopology: { node: nodes, versions: { producer: 1 } }, weightsManifest: [{ paths: ["model.bin"], weights }] }));
  return {
    name: "synthetic",
    input: { node: "image", name: "image", shape: ["batch", 8, 8, 3] },
    outputs: [
      { node: "mean", name: "mean", shape: ["batch", 24] },
      { node: "flat", name: "flat", shape: ["batch", 216] },
    ],
  };
}

/** A small deterministic generator (mulberry32) so the synthetic weights and inputs are the same on every run. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("tfjs GraphModel -> ONNX", () => {
  let dir: string;
  let spec: ConversionSpec;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "tfjs-graph-"));
    spec = syntheticModel(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a graph of fused convs, depthwise, PReLU, pad, pool, concat, mean and reshape (odd SAME padding) equals tfjs within 1e-5", async () => {
    const onnx = convertGraphModel(readGraphModel(dir, "model.json"), spec);
    const random = seeded(11);
    const input = Float32Array.from({ length: 2 * 8 * 8 * 3 }, () => random() * 2 - 1);
    const session = await ort.InferenceSession.create(onnx);
    const outputs = await session.run({ image: new ort.Tensor("float32", input, [2, 8, 8, 3]) });
    const reference = (await loadReferenceGraphModel(dir, "model.json")).run(input, [2, 8, 8, 3], ["mean", "flat"]);
    expect(outputs.mean!.dims).toEqual([2, 24]);
    expect(outputs.flat!.dims).toEqual([2, 216]);
    expect(maxAbsDifference(outputs.mean!.data as Float32Array, reference[0]!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDifference(outputs.flat!.data as Float32Array, reference[1]!)).toBeLessThanOrEqual(1e-5);
  }, PARITY_TIMEOUT_MS);

  test("conversion is deterministic", () => {
    const model = readGraphModel(dir, "model.json");
    expect(Buffer.from(convertGraphModel(model, spec)).equals(Buffer.from(convertGraphModel(readGraphModel(dir, "model.json"), spec)))).toBe(true);
  });

  test("an op the converter does not know is named in the error", () => {
    const model = readGraphModel(dir, "model.json");
    model.nodes.push({ name: "odd", op: "Cumsum", input: ["image"] });
    expect(() => convertGraphModel(model, { ...spec, outputs: [{ node: "odd", name: "odd", shape: [1] }] })).toThrow("Cumsum");
  });
});
