/**
 * face-api's FaceRecognitionNet (a port of dlib's ResNet-29 face descriptor) as ONNX.
 * Follows node_modules/@vladmandic/face-api/src/faceRecognitionNet: conv + bias + per-channel scale layer,
 * residual blocks, and down-sampling blocks whose shortcut is a 2x2 average pool zero-padded to the new channel
 * count, with the main branch zero-padded at the bottom/right when the pooled shortcut is larger.
 */
import { OnnxGraph } from "../onnx-graph.ts";
import { conv, hwioToOihw, normalisedInput, relu, type TfPadding } from "./layers.ts";
import { FaceApiWeights, type WeightTensor } from "./weights.ts";

const RECOGNITION_INPUT_SIZE = 150;
const RECOGNITION_INPUT = "pixels";
const RECOGNITION_OUTPUT = "descriptor";
/** face-api's mean RGB for this net (FaceRecognitionNet.forwardInput). */
export const FACE_API_MEAN_RGB = [122.782, 117.001, 104.298] as const;

const STAGES: { prefix: string; down: boolean }[] = [
  ...["conv32_1", "conv32_2", "conv32_3"].map((prefix) => ({ prefix, down: false })),
  { prefix: "conv64_down", down: true },
  ...["conv64_1", "conv64_2", "conv64_3"].map((prefix) => ({ prefix, down: false })),
  { prefix: "conv128_down", down: true },
  ...["conv128_1", "conv128_2"].map((prefix) => ({ prefix, down: false })),
  { prefix: "conv256_down", down: true },
  ...["conv256_1", "conv256_2"].map((prefix) => ({ prefix, down: false })),
  { prefix: "conv256_down_out", down: true },
];

/** A tensor in the graph with its static NCHW channel count and square spatial size. */
interface Feature {
  name: string;
  channels: number;
  size: number;
}

export function buildRecognitionNet(weights = FaceApiWeights.read("face_recognition_model")): Uint8Array {
  const graph = new OnnxGraph("face_api_recognition");
  const pixels = graph.input(RECOGNITION_INPUT, ["batch", RECOGNITION_INPUT_SIZE, RECOGNITION_INPUT_SIZE, 3]);
  let x: Feature = { name: normalisedInput(graph, pixels, FACE_API_MEAN_RGB), channels: 3, size: RECOGNITION_INPUT_SIZE };

  x = convLayer(graph, weights, "conv32_down", x, 2, "valid", true);
  x = { ...x, name: graph.node("MaxPool", [x.name], { kernel_shape: [3, 3], strides: [2, 2] }), size: validSize(x.size, 3, 2) };
  for (const stage of STAGES) x = stage.down ? residualDown(graph, weights, stage.prefix, x) : residual(graph, weights, stage.prefix, x);

  const pooled = graph.node("ReduceMean", [x.name], { axes: [2, 3], keepdims: 0 });
  const fc = weights.get("fc");
  const descriptor = graph.node("MatMul", [pooled, graph.constant("fc", fc.shape, fc.data)]);
  graph.identity(descriptor, RECOGNITION_OUTPUT);
  graph.output(RECOGNITION_OUTPUT, ["batch", fc.shape[1]!]);
  return graph.serialize();
}

function residual(graph: OnnxGraph, weights: FaceApiWeights, prefix: string, x: Feature): Feature {
  const out = convLayer(graph, weights, `${prefix}/conv1`, x, 1, "same", true);
  const main = convLayer(graph, weights, `${prefix}/conv2`, out, 1, "same", false);
  return { ...main, name: relu(graph, graph.node("Add", [main.name, x.name])) };
}

function residualDown(graph: OnnxGraph, weights: FaceApiWeights, prefix: string, x: Feature): Feature {
  const out = convLayer(graph, weights, `${prefix}/conv1`, x, 2, "valid", true);
  let main = convLayer(graph, weights, `${prefix}/conv2`, out, 1, "same", false);

  let shortcut: Feature = {
    ...x,
    name: graph.node("AveragePool", [x.name], { kernel_shape: [2, 2], strides: [2, 2] }),
    size: validSize(x.size, 2, 2),
  };
  const grow = shortcut.size - main.size;
  if (grow > 0) main = { ...main, name: pad(graph, main.name, [0, 0, 0, 0, 0, 0, grow, grow]), size: shortcut.size };
  const extraChannels = main.channels - shortcut.channels;
  if (extraChannels > 0) shortcut = { ...shortcut, name: pad(graph, shortcut.name, [0, 0, 0, 0, 0, extraChannels, 0, 0]) };
  return { ...main, name: relu(graph, graph.node("Add", [shortcut.name, main.name])) };
}

/** conv -> + bias -> * scale.weights + scale.biases [-> relu]; the scale layer is folded into the conv's filter and bias. */
function convLayer(
  graph: OnnxGraph,
  weights: FaceApiWeights,
  prefix: string,
  x: Feature,
  strides: number,
  padding: TfPadding,
  withRelu: boolean,
): Feature {
  const filter = hwioToOihw(weights.get(`${prefix}/conv/filters`));
  const bias = weights.get(`${prefix}/conv/bias`).data;
  const scale = weights.get(`${prefix}/scale/weights`).data;
  const shift = weights.get(`${prefix}/scale/biases`).data;
  const outChannels = filter.shape[0]!;
  const perFilter = filter.data.length / outChannels;
  const scaledFilter = filter.data.map((value, i) => value * scale[Math.floor(i / perFilter)]!);
  const scaledBias: WeightTensor = { shape: [outChannels], data: bias.map((value, k) => value * scale[k]! + shift[k]!) };
  const name = conv(graph, x.name, { shape: filter.shape, data: scaledFilter }, scaledBias, { strides, padding });
  const kernel = filter.shape[2]!;
  const size = padding === "same" ? Math.ceil(x.size / strides) : validSize(x.size, kernel, strides);
  return { name: withRelu ? relu(graph, name) : name, channels: outChannels, size };
}

function validSize(size: number, kernel: number, strides: number): number {
  return Math.floor((size - kernel) / strides) + 1;
}

function pad(graph: OnnxGraph, x: string, pads: number[]): string {
  return graph.node("Pad", [x, graph.int64Constant("pads", pads)]);
}
