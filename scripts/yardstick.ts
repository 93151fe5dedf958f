/**
 * What the hardware could do, for scripts/bench-model.ts --compare: each network's multiply-adds per input image, read
 * from the graph model:build writes, and this core's peak multiply-adds per second in float32 and in int8.
 */
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { decodeModel, withTensorOutputs } from "../model/build/quantize.ts";

/** Calls `observe` before every onnxruntime session run in this process (`sample` is any session, for its class). */
export function observeSessionRuns(sample: ort.InferenceSession, observe: (session: ort.InferenceSession, input: ort.Tensor) => Promise<void> | void): void {
  const sessionClass = Object.getPrototypeOf(sample) as { run: ort.InferenceSession["run"] };
  const run = sessionClass.run as (this: ort.InferenceSession, ...args: unknown[]) => Promise<ort.InferenceSession.ReturnType>;
  sessionClass.run = async function (this: ort.InferenceSession, feeds: ort.InferenceSession.FeedsType, ...rest: unknown[]) {
    const [input] = Object.values(feeds) as ort.Tensor[];
    if (input) await observe(this, input);
    return run.call(this, feeds, ...rest);
  } as ort.InferenceSession["run"];
}

/**
 * Multiply-adds per input image (batch 1): Conv = out_h * out_w * out_c * (in_c / group) * k_h * k_w, MatMul and Gemm
 * = M * K * N. The kernel shapes are the weight initializers' dims; the activation shapes come from running the graph
 * once with every Conv output and MatMul/Gemm input exposed (shape inference by execution, exact for every op).
 */
export async function macsPerImage(onnxPath: string): Promise<number> {
  const model = decodeModel(readFileSync(onnxPath));
  const graph = model.graph!;
  const weights = new Map(graph.initializer!.map((t) => [t.name!, t.dims!.map(Number)]));
  const counted = graph.node!.filter((n) => ["Conv", "MatMul", "Gemm"].includes(n.opType!));
  const probes = counted.map((n) => (n.opType === "Conv" ? n.output![0]! : n.input![0]!));
  const session = await ort.InferenceSession.create(withTensorOutputs(model, probes), { intraOpNumThreads: 1, graphOptimizationLevel: "disabled" });
  const input = graph.input![0]!;
  const dims = input.type!.tensorType!.shape!.dim!.map((d) => (d.dimValue ? Number(d.dimValue) : 1));
  const outputs = await session.run({ [input.name!]: new ort.Tensor("float32", new Float32Array(dims.reduce((a, b) => a * b, 1)), dims) });
  let macs = 0;
  counted.forEach((node, i) => {
    const shape = outputs[probes[i]!]!.dims.map(Number);
    const weight = weights.get(node.input![1]!);
    if (!weight) throw new Error(`${node.name}: its second input is not an initializer`);
    if (node.opType === "Conv") {
      const [outChannels, inPerGroup, kh, kw] = weight as [number, number, number, number];
      macs += shape[2]! * shape[3]! * outChannels * inPerGroup * kh * kw;
    } else {
      const transB = node.attribute?.find((a) => a.name === "transB")?.i;
      const n = Number(transB) === 1 ? weight[0]! : weight[weight.length - 1]!;
      macs += shape.reduce((a, b) => a * b, 1) * n; // A is [..., M, K]: M * K * N per leading index

    }
  });
  await session.release();
  return macs;
}

export interface CorePeak {
  description: string;
  ghz: number;
  fp32MacsPerCycle: number;
  int8MacsPerCycle: number;
}

/**
 * Upper bounds from the instruction tables, not measurements: the FMA/VNNI pipes full every cycle, at the clock
 * /proc/cpuinfo reports (a core boosting above it makes the real peak higher and the shares lower).
 */
export function corePeak(cpuinfo = readFileSync("/proc/cpuinfo", "utf8"), clockGhz?: number): CorePeak {
  const field = (name: string) => cpuinfo.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, "m"))?.[1] ?? "";
  const flags = new Set(field("flags").split(/\s+/));
  const ghz = clockGhz ?? Number(field("cpu MHz")) / 1000;
  const model = field("model name");
  const amd = field("vendor_id") === "AuthenticAMD";
  if (flags.has("avx512_vnni") && amd) {
    return {
      description: `${model} (AMD Zen 4: AVX-512 on two 256-bit FMA pipes FP0/FP1 = 2 x 8 fp32 FMA = 16 MAC/cycle; vpdpbusd ymm on the same two pipes = 2 x 32 = 64 int8 MAC/cycle) at ${ghz.toFixed(2)} GHz`,
      ghz,
      fp32MacsPerCycle: 16,
      int8MacsPerCycle: 64,
    };
  }
  if (flags.has("avx512_vnni")) {
    return {
      description: `${model} (Intel AVX-512: 2 FMA ports p0/p5 x 16 fp32 = 32 MAC/cycle; vpdpbusd zmm on both = 2 x 64 = 128 int8 MAC/cycle) at ${ghz.toFixed(2)} GHz`,
      ghz,
      fp32MacsPerCycle: 32,
      int8MacsPerCycle: 128,
    };
  }
  return {
    description: `${model} (AVX2: 2 FMA ports x 8 fp32 = 16 MAC/cycle; vpmaddubsw + vpmaddwd = 32 int8 MAC/cycle) at ${ghz.toFixed(2)} GHz`,
    ghz,
    fp32MacsPerCycle: 16,
    int8MacsPerCycle: 32,
  };
}
