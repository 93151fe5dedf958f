/**
 * face-api's FaceLandmark68Net as ONNX, following node_modules/@vladmandic/face-api/src/faceFeatureExtractor and
 * src/faceLandmarkNet: four dense blocks of depthwise-separable convs (each halving the size), a 7x7 average pool and a
 * fully connected layer giving 68 (x, y) pairs as fractions of the 112x112 input.
 */
import { OnnxGraph } from "../onnx-graph.ts";
import { FACE_API_MEAN_RGB } from "./recognition-net.ts";
import { conv, depthwiseToGrouped, hwioToOihw, normalisedInput, relu } from "./layers.ts";
import { FaceApiWeights } from "./weights.ts";

const LANDMARK_INPUT_SIZE = 112;
const LANDMARK_INPUT = "pixels";
const LANDMARK_OUTPUT = "landmarks";

export function buildLandmarkNet(weights = FaceApiWeights.read("face_landmark_68_model")): Uint8Array {
  const graph = new OnnxGraph("face_api_landmark68");
  const pixels = graph.input(LANDMARK_INPUT, ["batch", LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE, 3]);
  let x = normalisedInput(graph, pixels, FACE_API_MEAN_RGB);
  for (const [index, block] of ["dense0", "dense1", "dense2", "dense3"].entries()) x = denseBlock(graph, weights, block, x, index === 0);
  const pooled = graph.node("AveragePool", [x], { kernel_shape: [7, 7], strides: [2, 2] });
  const flat = graph.node("Flatten", [pooled], { axis: 1 });
  const fcWeights = weights.get("fc/weights");
  const fcBias = weights.get("fc/bias");
  const landmarks = graph.node("Gemm", [
    flat,
    graph.constant("fc_weights", fcWeights.shape, fcWeights.data),
    graph.constant("fc_bias", fcBias.shape, fcBias.data),
  ]);
  graph.identity(landmarks, LANDMARK_OUTPUT);
  graph.output(LANDMARK_OUTPUT, ["batch", fcBias.shape[0]!]);
  return graph.serialize();
}

/** denseBlock4 with down-scaling: every conv sees the relu'd sum of all earlier outputs of the block. */
function denseBlock(graph: OnnxGraph, weights: FaceApiWeights, prefix: string, x: string, isFirst: boolean): string {
  const first = isFirst
    ? conv(graph, x, hwioToOihw(weights.get(`${prefix}/conv0/filters`)), weights.get(`${prefix}/conv0/bias`), { strides: 2, padding: "same" })
    : separableConv(graph, weights, `${prefix}/conv0`, x, 2);
  let sum = relu(graph, first);
  for (const layer of ["conv1", "conv2", "conv3"]) {
    const out = separableConv(graph, weights, `${prefix}/${layer}`, layer === "conv1" ? sum : relu(graph, sum), 1);
    sum = graph.node("Add", [sum, out]);
  }
  return relu(graph, sum);
}

/** tf.separableConv2d (depthwise, then pointwise, 'same' padding) followed by the bias. */
function separableConv(graph: OnnxGraph, weights: FaceApiWeights, prefix: string, x: string, strides: number): string {
  const depthwise = depthwiseToGrouped(weights.get(`${prefix}/depthwise_filter`));
  const spatial = conv(graph, x, depthwise, null, { strides, padding: "same", group: depthwise.shape[0]! });
  const pointwise = hwioToOihw(weights.get(`${prefix}/pointwise_filter`));
  return conv(graph, spatial, pointwise, weights.get(`${prefix}/bias`), { strides: 1, padding: "valid" });
}
