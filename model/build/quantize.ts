/**
 * int8 versions of the float32 networks, in ONNX's QDQ form: every convolution's weights stored as int8 per output
 * channel (symmetric) with a DequantizeLinear, its bias as int32, and a QuantizeLinear/DequantizeLinear pair (uint8,
 * asymmetric) on the activations around it, with ranges from a committed calibration table. onnxruntime's graph
 * optimiser fuses DQ -> Conv -> (Relu) -> Q into QLinearConv (u8 activations x s8 weights: VNNI's vpdpbusd).
 */
import { onnx } from "onnx-proto";

/** Activation ranges per tensor name, as scripts/calibrate.ts measures them on lfw-devtrain. */
export interface CalibrationTable {
  network: string;
  /** What the ranges were measured on. */
  source: string;
  tensors: Record<string, [min: number, max: number]>;
}

const DataType = onnx.TensorProto.DataType;

export interface QuantisationOptions {
  /**
   * Other ops whose activation inputs and output are quantised too, so that they run in int8 between the convolutions
   * (Add as QLinearAdd when both its inputs are activations, AveragePool as QLinearAveragePool, Pad on the quantised values).
   */
  ops: string[];
}

/**
 * The activation tensors whose range the int8 graph needs: each convolution's input and its output, or, where the
 * convolution's only consumer is a Relu, the Relu's output (the optimiser folds that Relu into the quantisation); the
 * `ops` likewise.
 */
export function quantisedActivations(model: onnx.IModelProto, options: QuantisationOptions): string[] {
  const graph = model.graph!;
  const constants = new Set(graph.initializer!.map((t) => t.name!));
  const consumers = consumersOf(graph);
  const names = new Set<string>();
  const outputOrRelu = (output: string) => {
    const next = consumers.get(output) ?? [];
    return next.length === 1 && next[0]!.opType === "Relu" ? next[0]!.output![0]! : output;
  };
  for (const node of graph.node!) {
    const activations = node.input!.filter((input) => !constants.has(input));
    const other = options.ops.includes(node.opType!) && activations.length > 0 && (node.opType !== "Add" || activations.length === node.input!.length);
    if (node.opType !== "Conv" && !other) continue;
    for (const input of other ? activations : [node.input![0]!]) if (!constants.has(input)) names.add(input);
    names.add(outputOrRelu(node.output![0]!));
  }
  return [...names];
}

/** The float32 graph with the given intermediate tensors as extra outputs (to measure their ranges or shapes). */
export function withTensorOutputs(model: onnx.IModelProto, names: string[]): Uint8Array {
  const graph = model.graph!;
  const existing = new Set(graph.output!.map((o) => o.name!));
  const extra = names.filter((n) => !existing.has(n)).map((name) => ({ name, type: { tensorType: { elemType: DataType.FLOAT } } }));
  const probed = onnx.ModelProto.create({ ...model, graph: { ...graph, output: [...graph.output!, ...extra] } });
  return onnx.ModelProto.encode(probed).finish();
}

export function decodeModel(bytes: Uint8Array): onnx.IModelProto {
  return onnx.ModelProto.decode(bytes);
}

/** The QDQ int8 graph of a float32 one. Deterministic: the same float graph and table give the same bytes. */
export function quantiseModel(model: onnx.IModelProto, table: CalibrationTable, options: QuantisationOptions): Uint8Array {
  const graph = model.graph!;
  const initializers = new Map(graph.initializer!.map((t) => [t.name!, t]));
  const wanted = quantisedActivations(model, options);
  const missing = wanted.filter((name) => !table.tensors[name]);
  if (missing.length > 0) throw new Error(`calibration table for ${table.network} lacks ${missing.length} tensors (${missing.slice(0, 3).join(", ")}…): re-run scripts/calibrate.ts`);

  const newInitializers: onnx.ITensorProto[] = [];
  const newNodes: onnx.INodeProto[] = [];
  const activationScale = new Map<string, number>();
  /** Each quantised activation `t` is consumed as `t_dq`, made by Q then DQ right after its producer. */
  const pairs = new Map<string, onnx.INodeProto[]>();
  for (const name of wanted) {
    const [min, max] = table.tensors[name]!;
    const lo = Math.min(0, min);
    const hi = Math.max(0, max, lo + 1e-6);
    const scale = Math.fround((hi - lo) / 255);
    const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
    activationScale.set(name, scale);
    newInitializers.push(floatTensor(`${name}_scale`, [], [scale]), { name: `${name}_zero_point`, dims: [], dataType: DataType.UINT8, rawData: Uint8Array.of(zeroPoint) });
    pairs.set(name, [
      { opType: "QuantizeLinear", name: `${name}_Q`, input: [name, `${name}_scale`, `${name}_zero_point`], output: [`${name}_q`] },
      { opType: "DequantizeLinear", name: `${name}_DQ`, input: [`${name}_q`, `${name}_scale`, `${name}_zero_point`], output: [`${name}_dq`] },
    ]);
  }
  const rewired = (name: string) => (pairs.has(name) ? `${name}_dq` : name);
  const emitPairs = (outputs: string[]) => {
    for (const output of outputs) newNodes.push(...(pairs.get(output) ?? []));
  };
  const graphInputs = new Set(graph.input!.map((i) => i.name!));
  for (const name of graphInputs) emitPairs([name]);

  const replaced = new Set<string>();
  for (const node of graph.node!) {
    if (node.opType === "Conv") {
      const [x, w, b] = node.input!;
      const weight = initializers.get(w!);
      if (!weight || !pairs.has(x!)) throw new Error(`Conv ${node.name}: weights must be an initializer and its input calibrated`);
      const { q, scales } = quantiseWeights(weight);
      replaced.add(w!);
      newInitializers.push(
        { name: `${w}_int8`, dims: weight.dims, dataType: DataType.INT8, rawData: new Uint8Array(q.buffer) },
        floatTensor(`${w}_scale`, [scales.length], scales),
        { name: `${w}_zero_point`, dims: [scales.length], dataType: DataType.INT8, rawData: new Uint8Array(scales.length) },
      );
      newNodes.push({ opType: "DequantizeLinear", name: `${w}_DQ`, input: [`${w}_int8`, `${w}_scale`, `${w}_zero_point`], output: [`${w}_dq`], attribute: [{ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: 0 }] });
      const inputs = [`${x}_dq`, `${w}_dq`];
      if (b) {
        const bias = initializers.get(b);
        if (!bias) throw new Error(`Conv ${node.name}: bias must be an initializer`);
        replaced.add(b);
        const biasScales = scales.map((s) => Math.fround(s * activationScale.get(x!)!));
        const values = floatValues(bias);
        const q32 = Int32Array.from(values, (v, c) => Math.round(v / biasScales[c]!));
        newInitializers.push(
          { name: `${b}_int32`, dims: bias.dims, dataType: DataType.INT32, rawData: new Uint8Array(q32.buffer) },
          floatTensor(`${b}_scale`, [biasScales.length], biasScales),
          { name: `${b}_zero_point`, dims: [biasScales.length], dataType: DataType.INT32, rawData: new Uint8Array(biasScales.length * 4) },
        );
        newNodes.push({ opType: "DequantizeLinear", name: `${b}_DQ`, input: [`${b}_int32`, `${b}_scale`, `${b}_zero_point`], output: [`${b}_dq`], attribute: [{ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: 0 }] });
        inputs.push(`${b}_dq`);
      }
      newNodes.push({ ...node, input: inputs });
    } else {
      newNodes.push({ ...node, input: node.input!.map(rewired) });
    }
    emitPairs(node.output!);
  }
  const quantised = onnx.ModelProto.create({
    ...model,
    producerName: "facefleet int8",
    graph: {
      ...graph,
      node: newNodes,
      initializer: [...graph.initializer!.filter((t) => !replaced.has(t.name!)), ...newInitializers],
    },
  });
  return onnx.ModelProto.encode(quantised).finish();
}

/** Symmetric int8 per output channel (axis 0): scale = max |w| / 127. */
function quantiseWeights(weight: onnx.ITensorProto): { q: Int8Array; scales: number[] } {
  const values = floatValues(weight);
  const channels = Number(weight.dims![0]);
  const perChannel = values.length / channels;
  const q = new Int8Array(values.length);
  const scales: number[] = [];
  for (let c = 0; c < channels; c++) {
    let maxAbs = 0;
    for (let i = c * perChannel; i < (c + 1) * perChannel; i++) maxAbs = Math.max(maxAbs, Math.abs(values[i]!));
    const scale = Math.fround(maxAbs > 0 ? maxAbs / 127 : 1);
    scales.push(scale);
    for (let i = c * perChannel; i < (c + 1) * perChannel; i++) q[i] = Math.max(-127, Math.min(127, Math.round(values[i]! / scale)));
  }
  return { q, scales };
}

function floatValues(tensor: onnx.ITensorProto): Float32Array {
  if (tensor.dataType !== DataType.FLOAT || !tensor.rawData) throw new Error(`${tensor.name}: expected raw float32 data`);
  const raw = tensor.rawData;
  return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
}

function floatTensor(name: string, dims: number[], values: number[]): onnx.ITensorProto {
  return { name, dims, dataType: DataType.FLOAT, rawData: new Uint8Array(Float32Array.from(values).buffer) };
}

function consumersOf(graph: onnx.IGraphProto): Map<string, onnx.INodeProto[]> {
  const consumers = new Map<string, onnx.INodeProto[]>();
  for (const node of graph.node!) {
    for (const input of node.input!) {
      const list = consumers.get(input) ?? [];
      list.push(node);
      consumers.set(input, list);
    }
  }
  return consumers;
}
