/**
 * A TensorFlow.js GraphModel (model.json + binary shards) converted to ONNX.
 *
 * The tfjs graph is NHWC; ONNX convolutions and pools are NCHW. The converter tracks the layout of every tensor:
 * 4-D activations live in NCHW from the first Transpose after the input; constants that broadcast against them are
 * permuted at build time; ops whose meaning depends on the layout (Reshape, Squeeze) get their input back in NHWC.
 * Graph outputs are always in the tfjs layout, so the ONNX outputs equal the tfjs ones element for element.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { depthwiseToGrouped, hwioToOihw } from "./face-api/layers.ts";
import { OnnxGraph, type NodeAttributes } from "./onnx-graph.ts";
import { readWeights, type TfjsWeight, type WeightsManifestGroup } from "./tfjs-weights.ts";

interface AttrValue {
  s?: string;
  i?: string;
  f?: number;
  b?: boolean;
  list?: { s?: string[]; i?: string[]; f?: number[] };
  shape?: { dim?: { size: string }[] };
}

export interface TfjsNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, AttrValue>;
}

export interface TfjsGraphModel {
  nodes: TfjsNode[];
  weights: Map<string, TfjsWeight>;
}

interface ModelJson {
  modelTopology: { node: TfjsNode[] };
  weightsManifest: WeightsManifestGroup[];
}

/** Reads `file` (a GraphModel's model.json) and the shards it names from `dir`. */
export function readGraphModel(dir: string, file: string): TfjsGraphModel {
  const json = JSON.parse(readFileSync(join(dir, file), "utf8")) as ModelJson;
  if (!json.modelTopology?.node) throw new Error(`${file} is not a TensorFlow.js GraphModel`);
  return { nodes: json.modelTopology.node, weights: readWeights(dir, json.weightsManifest) };
}

export interface GraphEndpoint {
  /** The tfjs node (Placeholder for the input, any node for an output). */
  node: string;
  /** The ONNX tensor name. */
  name: string;
  /** Shape in the tfjs (NHWC) layout; strings are symbolic dimensions such as "batch". */
  shape: (number | string)[];
}

export interface ConversionSpec {
  name: string;
  input: GraphEndpoint;
  outputs: GraphEndpoint[];
}

type Value =
  | { kind: "tensor"; name: string; rank: number; nchw: boolean }
  | { kind: "constant"; weight: TfjsWeight };
type Tensor = Extract<Value, { kind: "tensor" }>;

/** Element-wise tfjs ops with numpy broadcasting, and their ONNX equivalents. */
const BINARY_OPS: Record<string, string> = {
  Add: "Add",
  AddV2: "Add",
  BiasAdd: "Add",
  Sub: "Sub",
  Mul: "Mul",
  RealDiv: "Div",
  Maximum: "Max",
  Minimum: "Min",
  Prelu: "PRelu",
};

/** Layout-free one-input tfjs ops with an ONNX op of the same meaning. */
const UNARY_OPS: Record<string, string> = { Relu: "Relu", Sigmoid: "Sigmoid", Abs: "Abs", Neg: "Neg" };

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

/** Converts the part of the graph that `spec.outputs` depend on; nodes are emitted in dependency order, so the bytes are deterministic. */
export function convertGraphModel(model: TfjsGraphModel, spec: ConversionSpec): Uint8Array {
  const converter = new Converter(model, spec);
  for (const output of spec.outputs) {
    converter.graph.identity(converter.plain(converter.value(output.node)), output.name);
    converter.graph.output(output.name, output.shape);
  }
  return converter.graph.serialize();
}

class Converter {
  readonly graph: OnnxGraph;
  private readonly nodes: Map<string, TfjsNode>;
  private readonly values = new Map<string, Value>();
  private readonly initializers = new Map<string, string>();
  private readonly layoutChanges = new Map<string, string>();

  constructor(
    private readonly model: TfjsGraphModel,
    private readonly spec: ConversionSpec,
  ) {
    this.graph = new OnnxGraph(spec.name);
    this.nodes = new Map(model.nodes.map((node) => [node.name, node]));
  }

  /** The value a tfjs input reference ("name", "name:0") stands for, converting its producer first. */
  value(reference: string): Value {
    const [name, index = "0"] = reference.split(":") as [string, string?];
    if (index !== "0") throw new Error(`${reference}: only first outputs are supported`);
    const known = this.values.get(name);
    if (known) return known;
    const node = this.nodes.get(name);
    if (!node) throw new Error(`node ${name} is not in the graph`);
    const value = this.convert(node);
    this.values.set(name, value);
    return value;
  }

  /** A tensor name in the tfjs layout. */
  plain(value: Value): string {
    if (value.kind === "constant") return this.constant(value.weight, false);
    if (!value.nchw) return value.name;
    return this.transposed(value.name, TO_NHWC);
  }

  /** A 4-D tensor name in NCHW. */
  private nchw(value: Value): string {
    if (value.kind === "constant") return this.constant(value.weight, true);
    if (value.nchw) return value.name;
    if (value.rank !== 4) throw new Error(`a rank-${value.rank} tensor cannot meet an NCHW activation`);
    return this.transposed(value.name, TO_NCHW);
  }

  private transposed(name: string, perm: number[]): string {
    const key = `${name}/${perm}`;
    let transposed = this.layoutChanges.get(key);
    if (!transposed) {
      transposed = this.graph.node("Transpose", [name], { perm });
      this.layoutChanges.set(key, transposed);
    }
    return transposed;
  }

  /** A float32 initializer; `nchw` right-aligns the constant to 4-D NHWC and permutes it to NCHW (for broadcasting against activations). */
  private constant(weight: TfjsWeight, nchw: boolean): string {
    if (weight.dtype !== "float32") throw new Error(`constant ${weight.name} is ${weight.dtype}, expected float32`);
    const permute = nchw && weight.shape.length > 0;
    const key = `${weight.name}/${permute}`;
    let name = this.initializers.get(key);
    if (!name) {
      const shape = permute ? [...Array<number>(4 - weight.shape.length).fill(1), ...weight.shape] : weight.shape;
      const data = permute ? permuteData(weight.data as Float32Array, shape, TO_NCHW) : (weight.data as Float32Array);
      name = this.graph.constant("const", permute ? TO_NCHW.map((axis) => shape[axis]!) : shape, data);
      this.initializers.set(key, name);
    }
    return name;
  }

  private weight(reference: string, dtype: TfjsWeight["dtype"]): TfjsWeight {
    const value = this.value(reference);
    if (value.kind !== "constant") throw new Error(`${reference} must be a constant`);
    if (value.weight.dtype !== dtype) throw new Error(`${reference} is ${value.weight.dtype}, expected ${dtype}`);
    return value.weight;
  }

  private integers(reference: string): number[] {
    return Array.from(this.weight(reference, "int32").data);
  }

  private tensor(reference: string): Tensor {
    const value = this.value(reference);
    if (value.kind !== "tensor") throw new Error(`${reference} must be computed, not a constant`);
    return value;
  }

  private convert(node: TfjsNode): Value {
    const inputs = (node.input ?? []).filter((input) => !input.startsWith("^"));
    const attr = new Attributes(node);
    const binaryOp = BINARY_OPS[node.op];
    if (binaryOp) return this.binary(binaryOp, inputs);
    const unaryOp = UNARY_OPS[node.op];
    if (unaryOp) {
      const x = this.tensor(inputs[0]!);
      return { ...x, name: this.graph.node(unaryOp, [x.name]) };
    }
    switch (node.op) {
      case "Const": {
        const weight = this.model.weights.get(node.name);
        if (!weight) throw new Error(`constant ${node.name} has no weight`);
        return { kind: "constant", weight };
      }
      case "Placeholder":
        return this.placeholder(node, attr);
      case "Identity":
        return this.value(inputs[0]!);
      case "Conv2D":
      case "_FusedConv2D":
      case "DepthwiseConv2dNative":
      case "FusedDepthwiseConv2dNative":
      case "_FusedDepthwiseConv2dNative":
        return this.convolution(node, inputs, attr);
      case "MaxPool":
      case "AvgPool":
        return this.pool(node.op, inputs, attr);
      case "Relu6":
        return this.activation("Relu6", this.tensor(inputs[0]!));
      case "Square": {
        const x = this.tensor(inputs[0]!);
        return { ...x, name: this.graph.node("Mul", [x.name, x.name]) };
      }
      case "Rsqrt": {
        const x = this.tensor(inputs[0]!);
        return { ...x, name: this.graph.node("Reciprocal", [this.graph.node("Sqrt", [x.name])]) };
      }
      case "Pad":
      case "PadV2":
        return this.pad(inputs);
      case "Reshape": {
        const shape = this.integers(inputs[1]!);
        if (shape.includes(0)) throw new Error(`${node.name}: Reshape to a zero dimension is not supported`);
        const x = this.plain(this.tensor(inputs[0]!));
        return plainTensor(this.graph.node("Reshape", [x, this.graph.int64Constant("shape", shape)]), shape.length);
      }
      case "Squeeze": {
        const x = this.tensor(inputs[0]!);
        const axes = attr.ints("squeeze_dims", attr.ints("axis", [])).map((axis) => (axis < 0 ? axis + x.rank : axis));
        if (axes.length === 0) throw new Error(`${node.name}: Squeeze without explicit axes is not supported`);
        const squeezed = this.graph.node("Squeeze", [this.plain(x), this.graph.int64Constant("axes", axes)]);
        return plainTensor(squeezed, x.rank - axes.length);
      }
      case "ConcatV2":
        return this.concat(inputs);
      case "Sum":
      case "Mean":
      case "Max":
        return this.reduce(node.op, inputs, attr);
      default:
        throw new Error(`${node.name}: tfjs op ${node.op} is not supported by the converter`);
    }
  }

  private placeholder(node: TfjsNode, attr: Attributes): Value {
    const { input } = this.spec;
    if (node.name !== input.node) throw new Error(`placeholder ${node.name} is not the declared input ${input.node}`);
    const rank = attr.shapeRank("shape") ?? input.shape.length;
    const name = this.graph.input(input.name, input.shape);
    return { kind: "tensor", name, rank, nchw: false };
  }

  /** Conv2D and depthwise convs, plain or with tfjs' fused BiasAdd and activation (fused_ops, extra args: bias, then PReLU alpha). */
  private convolution(node: TfjsNode, inputs: string[], attr: Attributes): Value {
    const x = this.nchw(this.tensor(inputs[0]!));
    const filterWeight = this.weight(inputs[1]!, "float32");
    const depthwise = node.op.includes("Depthwise");
    const hwio = { shape: filterWeight.shape, data: filterWeight.data as Float32Array };
    const filter = depthwise ? depthwiseToGrouped(hwio) : hwioToOihw(hwio);
    const [height, width] = filterWeight.shape as [number, number];
    const [extraOp, activation] = attr.strings("fused_ops");
    const args = inputs.slice(2);
    const withBias = extraOp === "BiasAdd";
    if (extraOp !== undefined && !withBias) throw new Error(`${node.name}: fused op ${extraOp} is not supported`);
    const convInputs = [x, this.graph.constant("filter", filter.shape, filter.data)];
    if (withBias) convInputs.push(this.constant(this.weight(args[0]!, "float32"), false));
    const strides = attr.ints("strides", [1, 1, 1, 1]);
    const dilations = attr.ints("dilations", [1, 1, 1, 1]);
    const output = this.graph.node("Conv", convInputs, {
      kernel_shape: [height, width],
      strides: [strides[1]!, strides[2]!],
      dilations: [dilations[1]!, dilations[2]!],
      group: { int: depthwise ? filterWeight.shape[2]! : 1 },
      ...padding(attr),
    });
    const convolved: Tensor = { kind: "tensor", name: output, rank: 4, nchw: true };
    if (extraOp === undefined) return convolved;
    const alpha = activation === "Prelu" ? this.value(args[1]!) : undefined;
    return activation ? this.activation(activation, convolved, alpha, attr.float("leakyrelu_alpha", 0.2)) : convolved;
  }

  private activation(name: string, x: Tensor, alpha?: Value, leakyAlpha = 0.2): Tensor {
    const node = (op: string, inputs: string[], attributes?: NodeAttributes) => ({ ...x, name: this.graph.node(op, inputs, attributes) });
    switch (name) {
      case "Relu":
        return node("Relu", [x.name]);
      case "Relu6":
        return node("Clip", [x.name, this.graph.constant("zero", [], [0]), this.graph.constant("six", [], [6])]);
      case "Sigmoid":
        return node("Sigmoid", [x.name]);
      case "Elu":
        return node("Elu", [x.name]);
      case "LeakyRelu":
        return node("LeakyRelu", [x.name], { alpha: { float: leakyAlpha } });
      case "Prelu":
        if (!alpha) throw new Error("fused Prelu without alpha");
        return node("PRelu", [x.name, x.nchw ? this.nchw(alpha) : this.plain(alpha)]);
      default:
        throw new Error(`fused activation ${name} is not supported`);
    }
  }

  private pool(op: "MaxPool" | "AvgPool", inputs: string[], attr: Attributes): Value {
    const x = this.nchw(this.tensor(inputs[0]!));
    const size = attr.ints("ksize", [1, 1, 1, 1]);
    const strides = attr.ints("strides", [1, 1, 1, 1]);
    const output = this.graph.node(op === "MaxPool" ? "MaxPool" : "AveragePool", [x], {
      kernel_shape: [size[1]!, size[2]!],
      strides: [strides[1]!, strides[2]!],
      ...padding(attr),
    });
    return { kind: "tensor", name: output, rank: 4, nchw: true };
  }

  /** Element-wise ops with numpy broadcasting; an NCHW operand pulls the other one into NCHW. */
  private binary(op: string, inputs: string[]): Value {
    const [a, b] = [this.value(inputs[0]!), this.value(inputs[1]!)];
    const rankOf = (v: Value) => (v.kind === "tensor" ? v.rank : v.weight.shape.length);
    const rank = Math.max(rankOf(a), rankOf(b));
    const nchw = [a, b].some((v) => v.kind === "tensor" && v.nchw);
    const operand = (v: Value) => (nchw ? this.nchw(v) : this.plain(v));
    return { kind: "tensor", name: this.graph.node(op, [operand(a), operand(b)]), rank, nchw };
  }

  private pad(inputs: string[]): Value {
    const x = this.tensor(inputs[0]!);
    const paddings = this.integers(inputs[1]!);
    const rows = Array.from({ length: x.rank }, (_, axis) => [paddings[2 * axis]!, paddings[2 * axis + 1]!] as const);
    const ordered = x.nchw ? TO_NCHW.map((axis) => rows[axis]!) : rows;
    const pads = this.graph.int64Constant("pads", [...ordered.map(([before]) => before), ...ordered.map(([, after]) => after)]);
    const padInputs = [x.name, pads];
    if (inputs[2]) padInputs.push(this.plain(this.value(inputs[2])));
    return { ...x, name: this.graph.node("Pad", padInputs, { mode: "constant" }) };
  }

  private concat(inputs: string[]): Value {
    const [axisValue] = this.integers(inputs.at(-1)!);
    const parts = inputs.slice(0, -1).map((input) => this.value(input));
    const rank = Math.max(...parts.map((part) => (part.kind === "tensor" ? part.rank : part.weight.shape.length)));
    const axis = axisValue! < 0 ? axisValue! + rank : axisValue!;
    const nchw = rank === 4 && parts.some((part) => part.kind === "tensor" && part.nchw);
    const names = parts.map((part) => (nchw ? this.nchw(part) : this.plain(part)));
    const output = this.graph.node("Concat", names, { axis: { int: nchw ? TO_NCHW.indexOf(axis) : axis } });
    return { kind: "tensor", name: output, rank, nchw };
  }

  /** Sum, Mean, Max over constant axes; on NCHW input when the surviving axes keep their order, else on NHWC. */
  private reduce(op: "Sum" | "Mean" | "Max", inputs: string[], attr: Attributes): Value {
    const x = this.tensor(inputs[0]!);
    const axes = this.integers(inputs[1]!).map((axis) => (axis < 0 ? axis + x.rank : axis));
    const keepDims = attr.bool("keep_dims", false);
    const survivors = (order: number[]) => order.filter((axis) => !axes.includes(axis));
    const inNchw = x.nchw && (keepDims || survivors(TO_NCHW).join() === survivors([0, 1, 2, 3]).join());
    const onnxAxes = inNchw ? axes.map((axis) => TO_NCHW.indexOf(axis)) : axes;
    const input = inNchw ? x.name : this.plain(x);
    const keepdims = { int: keepDims ? 1 : 0 };
    // Opset 17: ReduceSum takes its axes as an input, ReduceMean and ReduceMax as an attribute.
    const output =
      op === "Sum"
        ? this.graph.node("ReduceSum", [input, this.graph.int64Constant("axes", onnxAxes)], { keepdims })
        : this.graph.node(op === "Mean" ? "ReduceMean" : "ReduceMax", [input], { axes: onnxAxes, keepdims });
    return { kind: "tensor", name: output, rank: keepDims ? x.rank : x.rank - axes.length, nchw: inNchw && keepDims };
  }
}

function plainTensor(name: string, rank: number): Tensor {
  return { kind: "tensor", name, rank, nchw: false };
}

/** TF padding as ONNX attributes: SAME puts the odd pixel at the end (SAME_UPPER); EXPLICIT lists NHWC [before, after] pairs. */
function padding(attr: Attributes): NodeAttributes {
  const mode = attr.string("padding", "VALID");
  if (mode === "SAME") return { auto_pad: "SAME_UPPER" };
  if (mode === "VALID") return { auto_pad: "VALID" };
  if (mode === "EXPLICIT") {
    const [, , top, bottom, left, right] = attr.ints("explicit_paddings", []);
    return { pads: [top!, left!, bottom!, right!] };
  }
  throw new Error(`padding ${mode} is not supported`);
}

/** Reorders a row-major array of `shape` by `perm` (output axis i is input axis perm[i]). */
export function permuteData(data: Float32Array, shape: number[], perm: number[]): Float32Array {
  const outShape = perm.map((axis) => shape[axis]!);
  const inStrides = strides(shape);
  const out = new Float32Array(data.length);
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < data.length; flat++) {
    let source = 0;
    for (let i = 0; i < perm.length; i++) source += index[i]! * inStrides[perm[i]!]!;
    out[flat] = data[source]!;
    for (let i = outShape.length - 1; i >= 0; i--) {
      if (++index[i]! < outShape[i]!) break;
      index[i] = 0;
    }
  }
  return out;
}

function strides(shape: number[]): number[] {
  const result = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) result[i] = result[i + 1]! * shape[i + 1]!;
  return result;
}

/** Typed access to a tfjs node's attributes (strings are base64 in model.json). */
class Attributes {
  private readonly attr: Record<string, AttrValue>;

  constructor(node: TfjsNode) {
    this.attr = node.attr ?? {};
  }

  string(key: string, fallback: string): string {
    const s = this.attr[key]?.s;
    return s === undefined ? fallback : Buffer.from(s, "base64").toString("utf8");
  }

  strings(key: string): string[] {
    return (this.attr[key]?.list?.s ?? []).map((s) => Buffer.from(s, "base64").toString("utf8"));
  }

  ints(key: string, fallback: number[]): number[] {
    const list = this.attr[key]?.list?.i;
    return list && list.length > 0 ? list.map(Number) : fallback;
  }

  float(key: string, fallback: number): number {
    return this.attr[key]?.f ?? fallback;
  }

  bool(key: string, fallback: boolean): boolean {
    return this.attr[key]?.b ?? fallback;
  }

  shapeRank(key: string): number | undefined {
    return this.attr[key]?.shape?.dim?.length;
  }
}
