/** ONNX Runtime sessions as every model uses them: one intra-op thread each (parallelism comes from worker threads). */
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";

/** Where `bun run model:build` writes the ONNX files and where the runtime reads them. */
export const ONNX_DIR = join(import.meta.dir, "onnx");

export type OnnxSession = ort.InferenceSession;

export class ModelFileMissingError extends Error {
  override name = "ModelFileMissingError";
}

export function openSession(path: string): Promise<OnnxSession> {
  if (!existsSync(path)) return Promise.reject(new ModelFileMissingError(`model file ${path} is missing: build the models with \`bun run model:build\``));
  return ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: "all" });
}

/** Runs a one-input, one-output float32 model and returns the output values. */
export async function runFloat(session: OnnxSession, input: Float32Array, dims: number[]): Promise<Float32Array> {
  const [inputName] = session.inputNames;
  const [outputName] = session.outputNames;
  const outputs = await session.run({ [inputName!]: new ort.Tensor("float32", input, dims) });
  return outputs[outputName!]!.data as Float32Array;
}

/** The file model:build writes the int8 (QDQ) version of a float32 network to. */
export function int8File(file: string): string {
  return file.replace(/\.onnx$/, "-int8.onnx");
}
