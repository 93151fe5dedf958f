/**
 * face-api's SsdMobilenetv1 face detector as ONNX, following node_modules/@vladmandic/face-api/src/ssdMobilenetv1:
 * MobileNetV1 (batch norm folded into the depthwise convs, ReLU6), the SSD prediction layers on six feature maps and
 * the box decoding against the 5118 anchors shipped with the weights (Output/extra_dim). Outputs: `boxes`
 * [batch, 5118, 4] as (top, left, bottom, right) fractions of the 512x512 input, and `scores` [batch, 5118].
 * Non-maximum suppression is left to TypeScript.
 */
import { OnnxGraph } from "../onnx-graph.ts";
import { conv, depthwiseToGrouped, hwioToOihw } from "./layers.ts";
import { FaceApiWeights } from "./weights.ts";

const SSD_INPUT_SIZE = 512;
const SSD_INPUT = "pixels";
const SSD_BOXES = "boxes";
const SSD_SCORES = "scores";
/** tf.batchNorm's epsilon in face-api's mobileNetV1.ts. */
const BATCH_NORM_EPSILON = 0.0010000000474974513;
/** MobileNetV1 layers whose depthwise conv has stride 2 (face-api's getStridesForLayerIdx). */
const STRIDE_2_LAYERS = new Set([2, 4, 6, 12]);

export function buildSsdMobilenetNet(weights = FaceApiWeights.read("ssd_mobilenetv1_model")): Uint8Array {
  const graph = new OnnxGraph("face_api_ssd_mobilenetv1");
  const pixels = graph.input(SSD_INPUT, ["batch", SSD_INPUT_SIZE, SSD_INPUT_SIZE, 3]);
  const nchw = graph.node("Transpose", [pixels], { perm: [0, 3, 1, 2] });
  // face-api: x / 127.5 - 1
  let x = graph.node("Sub", [graph.node("Div", [nchw, graph.constant("half_range", [1], [127.5])]), graph.constant("one", [1], [1])]);
  const relu6 = (input: string) => graph.node("Clip", [input, graph.constant("zero", [], [0]), graph.constant("six", [], [6])]);
  const pointwise = (input: string, prefix: string, strides: number) =>
    relu6(conv(graph, input, hwioToOihw(weights.get(`${prefix}/weights`)), weights.get(`${prefix}/convolution_bn_offset`), { strides, padding: "same" }));

  x = pointwise(x, "MobilenetV1/Conv2d_0_pointwise", 2);
  let conv11 = x;
  for (let layer = 1; layer <= 13; layer++) {
    x = relu6(depthwiseWithBatchNorm(graph, weights, `MobilenetV1/Conv2d_${layer}_depthwise`, x, STRIDE_2_LAYERS.has(layer) ? 2 : 1));
    x = pointwise(x, `MobilenetV1/Conv2d_${layer}_pointwise`, 1);
    if (layer === 11) conv11 = x;
  }

  const features = [conv11, x];
  let extra = x;
  for (let layer = 0; layer < 8; layer++) {
    extra = pointwise(extra, `Prediction/Conv2d_${layer}_pointwise`, layer % 2 === 1 ? 2 : 1);
    if (layer % 2 === 1) features.push(extra);
  }
  const predict = (feature: string, index: number, kind: "BoxEncodingPredictor" | "ClassPredictor", width: number) => {
    const prefix = `Prediction/BoxPredictor_${index}/${kind}`;
    const out = conv(graph, feature, hwioToOihw(weights.get(`${prefix}/weights`)), weights.get(`${prefix}/biases`), { strides: 1, padding: "same" });
    // face-api reshapes the NHWC map, so anchors run row, column, then anchor within the cell.
    const nhwc = graph.node("Transpose", [out], { perm: [0, 2, 3, 1] });
    return graph.node("Reshape", [nhwc, graph.int64Constant("shape", [0, -1, width])]);
  };
  const encodings = graph.node("Concat", features.map((feature, i) => predict(feature, i, "BoxEncodingPredictor", 4)), { axis: 1 });
  const classes = graph.node("Concat", features.map((feature, i) => predict(feature, i, "ClassPredictor", 3)), { axis: 1 });

  graph.identity(decodeBoxes(graph, weights, encodings), SSD_BOXES);
  const face = graph.node("Slice", [classes, graph.int64Constant("starts", [1]), graph.int64Constant("ends", [2]), graph.int64Constant("axes", [2])]);
  graph.identity(graph.node("Sigmoid", [graph.node("Squeeze", [face, graph.int64Constant("axes", [2])])]), SSD_SCORES);
  const anchors = weights.get("Output/extra_dim").shape[1]!;
  graph.output(SSD_BOXES, ["batch", anchors, 4]);
  graph.output(SSD_SCORES, ["batch", anchors]);
  return graph.serialize();
}

/** tf.depthwiseConv2d then tf.batchNorm, folded: filter * gamma / sqrt(variance + eps), bias beta - mean * that factor. */
function depthwiseWithBatchNorm(graph: OnnxGraph, weights: FaceApiWeights, prefix: string, x: string, strides: number): string {
  const filter = depthwiseToGrouped(weights.get(`${prefix}/depthwise_weights`));
  const gamma = weights.get(`${prefix}/BatchNorm/gamma`).data;
  const beta = weights.get(`${prefix}/BatchNorm/beta`).data;
  const mean = weights.get(`${prefix}/BatchNorm/moving_mean`).data;
  const variance = weights.get(`${prefix}/BatchNorm/moving_variance`).data;
  const channels = filter.shape[0]!;
  const factor = Float32Array.from({ length: channels }, (_, c) => gamma[c]! / Math.sqrt(variance[c]! + BATCH_NORM_EPSILON));
  const perChannel = filter.data.length / channels;
  const folded = filter.data.map((value, i) => value * factor[Math.floor(i / perChannel)]!);
  const bias = Float32Array.from({ length: channels }, (_, c) => beta[c]! - mean[c]! * factor[c]!);
  return conv(graph, x, { shape: filter.shape, data: folded }, { shape: [channels], data: bias }, { strides, padding: "same", group: channels });
}

/**
 * face-api's decodeBoxesLayer: anchors are (top, left, bottom, right); encodings (dy, dx, dh, dw) scaled by 10, 10, 5, 5
 * as in the TensorFlow object detection API's box coder.
 */
function decodeBoxes(graph: OnnxGraph, weights: FaceApiWeights, encodings: string): string {
  const anchors = weights.get("Output/extra_dim");
  const count = anchors.shape[1]!;
  const sizes = new Float32Array(count * 2);
  const centres = new Float32Array(count * 2);
  for (let i = 0; i < count; i++) {
    const [top, left, bottom, right] = anchors.data.subarray(i * 4, i * 4 + 4) as unknown as [number, number, number, number];
    sizes[2 * i] = bottom - top;
    sizes[2 * i + 1] = right - left;
    centres[2 * i] = top + sizes[2 * i]! / 2;
    centres[2 * i + 1] = left + sizes[2 * i + 1]! / 2;
  }
  const size = graph.constant("anchor_sizes", [1, count, 2], sizes);
  const slice = (start: number) => graph.node("Slice", [encodings, graph.int64Constant("starts", [start]), graph.int64Constant("ends", [start + 2]), graph.int64Constant("axes", [2])]);
  const centre = graph.node("Add", [
    graph.node("Mul", [graph.node("Div", [slice(0), graph.constant("ten", [], [10])]), size]),
    graph.constant("anchor_centres", [1, count, 2], centres),
  ]);
  const half = graph.node("Div", [graph.node("Mul", [graph.node("Exp", [graph.node("Div", [slice(2), graph.constant("five", [], [5])])]), size]), graph.constant("two", [], [2])]);
  return graph.node("Concat", [graph.node("Sub", [centre, half]), graph.node("Add", [centre, half])], { axis: 2 });
}
