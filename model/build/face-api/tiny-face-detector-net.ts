/**
 * face-api's TinyFaceDetector (a Tiny-YOLOv2 with depthwise-separable convs, 5 anchors, one class) as ONNX, following
 * node_modules/@vladmandic/face-api/src/tinyYolov2 (runMobilenet with isFirstLayerConv2d) and src/tinyFaceDetector.
 * The output is the raw grid [batch, 5 anchors * (x, y, w, h, score), rows, cols]; decoding and NMS are in TypeScript.
 */
import { OnnxGraph } from "../onnx-graph.ts";
import { conv, depthwiseToGrouped, hwioToOihw, normalisedInput } from "./layers.ts";
import { FaceApiWeights } from "./weights.ts";

const TINY_FACE_DETECTOR_INPUT = "pixels";
const TINY_FACE_DETECTOR_OUTPUT = "grid";
/** face-api's mean RGB for this net (src/tinyFaceDetector/const.ts). */
const TINY_FACE_DETECTOR_MEAN_RGB = [117.001, 114.697, 97.404] as const;
/** face-api's leaky relu: relu(x - 0.1x) + 0.1x with 0.1 as a float32. */
const LEAKY_ALPHA = 0.10000000149011612;

export function buildTinyFaceDetectorNet(weights = FaceApiWeights.read("tiny_face_detector_model")): Uint8Array {
  const graph = new OnnxGraph("face_api_tiny_face_detector");
  const pixels = graph.input(TINY_FACE_DETECTOR_INPUT, ["batch", "size", "size", 3]);
  let x = normalisedInput(graph, pixels, TINY_FACE_DETECTOR_MEAN_RGB);
  x = leaky(graph, conv(graph, x, hwioToOihw(weights.get("conv0/filters")), weights.get("conv0/bias"), { strides: 1, padding: "valid" }));
  for (const layer of ["conv1", "conv2", "conv3", "conv4", "conv5"]) {
    x = maxPool(graph, x, 2);
    x = separableConv(graph, weights, layer, x);
  }
  x = maxPool(graph, x, 1);
  const head = weights.get("conv8/filters");
  const grid = conv(graph, x, hwioToOihw(head), weights.get("conv8/bias"), { strides: 1, padding: "valid" });
  graph.identity(grid, TINY_FACE_DETECTOR_OUTPUT);
  graph.output(TINY_FACE_DETECTOR_OUTPUT, ["batch", head.shape[3]!, "rows", "cols"]);
  return graph.serialize();
}

/** tf.maxPool 2x2 with 'same' padding: the odd row/column is padded at the end (ONNX MaxPool ignores padding). */
function maxPool(graph: OnnxGraph, x: string, strides: number): string {
  return graph.node("MaxPool", [x], { kernel_shape: [2, 2], strides: [strides, strides], auto_pad: "SAME_UPPER" });
}

function leaky(graph: OnnxGraph, x: string): string {
  return graph.node("LeakyRelu", [x], { alpha: { float: LEAKY_ALPHA } });
}

/** Zero-pad 1, depthwise 3x3, pointwise, bias, leaky relu. */
function separableConv(graph: OnnxGraph, weights: FaceApiWeights, prefix: string, x: string): string {
  const depthwise = depthwiseToGrouped(weights.get(`${prefix}/depthwise_filter`));
  const spatial = conv(graph, x, depthwise, null, { strides: 1, padding: "same", group: depthwise.shape[0]! });
  const pointwise = hwioToOihw(weights.get(`${prefix}/pointwise_filter`));
  return leaky(graph, conv(graph, spatial, pointwise, weights.get(`${prefix}/bias`), { strides: 1, padding: "valid" }));
}
