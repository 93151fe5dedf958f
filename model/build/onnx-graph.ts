/** A small builder for ONNX graphs, shared by every converter in model/build/. */
import { onnx } from "onnx-proto";

export type AttributeValue = number | number[] | string | Float32Array;

export interface NodeAttributes {
  [name: string]: AttributeValue | { ints: number[] } | { floats: number[] } | { int: number } | { float: number };
}

const OPSET = 17;

export class OnnxGraph {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private counter = 0;

  constructor(readonly name: string) {}

  /** A fresh tensor name with the given stem. */
  fresh(stem: string): string {
    return `${stem}__${this.counter++}`;
  }

  input(name: string, shape: (number | string)[]): string {
    this.inputs.push(valueInfo(name, shape));
    return name;
  }

  output(name: string, shape: (number | string)[]): void {
    this.outputs.push(valueInfo(name, shape));
  }

  /** A float32 constant tensor. */
  constant(stem: string, dims: number[], values: Float32Array | number[]): string {
    const name = this.fresh(stem);
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    const expected = dims.reduce((a, b) => a * b, 1);
    if (data.length !== expected) throw new Error(`constant ${stem}: ${data.length} values for shape [${dims}]`);
    this.initializers.push({
      name,
      dims,
      dataType: onnx.TensorProto.DataType.FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** An int64 constant tensor (shapes, axes, pads). */
  int64Constant(stem: string, values: number[]): string {
    const name = this.fresh(stem);
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: onnx.TensorProto.DataType.INT64,
      rawData: new Uint8Array(data.buffer),
    });
    return name;
  }

  /** Adds a node and returns the name of its (first) output. */
  node(opType: string, inputs: string[], attributes: NodeAttributes = {}, outputCount = 1): string {
    const outputs = Array.from({ length: outputCount }, () => this.fresh(opType.toLowerCase()));
    this.nodes.push({
      opType,
      name: this.fresh(`${opType}_node`),
      input: inputs,
      output: outputs,
      attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
    });
    return outputs[0]!;
  }

  /** Renames the producer's output so a graph output can carry a stable name. */
  identity(input: string, name: string): string {
    this.nodes.push({ opType: "Identity", name: this.fresh("Identity_node"), input: [input], output: [name] });
    return name;
  }

  serialize(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: "facefleet",
      opsetImport: [{ domain: "", version: OPSET }],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, shape: (number | string)[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, value: NodeAttributes[string]): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === "string") return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === "number") {
    return Number.isInteger(value) ? { name, type: T.INT, i: value } : { name, type: T.FLOAT, f: value };
  }
  if (value instanceof Float32Array) return { name, type: T.FLOATS, floats: Array.from(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if ("ints" in value) return { name, type: T.INTS, ints: value.ints };
  if ("floats" in value) return { name, type: T.FLOATS, floats: value.floats };
  if ("int" in value) return { name, type: T.INT, i: value.int };
  return { name, type: T.FLOAT, f: value.float };
}
