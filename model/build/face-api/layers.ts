/** TensorFlow.js layer semantics expressed as ONNX nodes (NCHW inside the graph). */
import type { OnnxGraph } from "../onnx-graph.ts";
import type { WeightTensor } from "./weights.ts";

export type TfPadding = "same" | "valid";

/** tfjs conv filters are HWIO; ONNX wants OIHW. */
export function hwioToOihw({ shape, data }: WeightTensor): WeightTensor {
  const [h, w, i, o] = shape as [number, number, number, number];
  const out = new Float32Array(data.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < i; c++)
        for (let k = 0; k < o; k++) out[((k * i + c) * h + y) * w + x] = data[((y * w + x) * i + c) * o + k]!;
  return { shape: [o, i, h, w], data: out };
}

/** tfjs depthwise filters are [h, w, C, M]; ONNX wants [C*M, 1, h, w] with group C (output channel c*M + m, as in TF). */
export function depthwiseToGrouped({ shape, data }: WeightTensor): WeightTensor {
  const [h, w, c, m] = shape as [number, number, number, number];
  // Read as HWIO with one input channel and C*M outputs, the transpose yields exactly [C*M, 1, h, w].
  return hwioToOihw({ shape: [h, w, 1, c * m], data });
}

/** Converts NHWC pixels to the NCHW tensor the graph computes on, subtracting face-api's mean RGB and dividing by 255. */
export function normalisedInput(graph: OnnxGraph, pixels: string, meanRgb: readonly [number, number, number]): string {
  const nchw = graph.node("Transpose", [pixels], { perm: [0, 3, 1, 2] });
  const centred = graph.node("Sub", [nchw, graph.constant("mean_rgb", [1, 3, 1, 1], [...meanRgb])]);
  return graph.node("Div", [centred, graph.constant("pixel_range", [1], [255])]);
}

export interface ConvOptions {
  strides: number;
  padding: TfPadding;
  group?: number;
}

/** A conv with tfjs 'same' (SAME_UPPER: odd padding goes at the end, as in TF) or 'valid' padding; filter already in ONNX layout. */
export function conv(graph: OnnxGraph, x: string, filter: WeightTensor, bias: WeightTensor | null, options: ConvOptions): string {
  const inputs = [x, graph.constant("filter", filter.shape, filter.data)];
  if (bias) inputs.push(graph.constant("bias", bias.shape, bias.data));
  return graph.node("Conv", inputs, {
    kernel_shape: filter.shape.slice(2),
    strides: [options.strides, options.strides],
    auto_pad: options.padding === "same" ? "SAME_UPPER" : "VALID",
    group: { int: options.group ?? 1 },
  });
}

export function relu(graph: OnnxGraph, x: string): string {
  return graph.node("Relu", [x]);
}
