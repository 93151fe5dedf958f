/** ONNX Runtime sessions as every model uses them: one intra-op thread each (parallelism comes from worker threads). */
import * as ort from "onnxruntime-node";

export type OnnxSession = ort.InferenceSession;

export function openSession(path: string): Promise<OnnxSession> {
  return ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: "all" });
}

/** Runs a one-input, one-output float32 model and returns the output values. */
export async function runFloat(session: OnnxSession, input: Float32Array, dims: number[]): Promise<Float32Array> {
  const [inputName] = session.inputNames;
  const [outputName] = session.outputNames;
  const outputs = await session.run({ [inputName!]: new ort.Tensor("float32", input, dims) });
  return outputs[outputName!]!.data as Float32Array;
}
