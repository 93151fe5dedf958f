/** TensorFlow.js itself (pure JS CPU backend) running a GraphModel: the independent reference for the converter's parity tests. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import type { WeightsManifestGroup } from "../../../model/build/tfjs-weights.ts";

/** tfjs' pure-JS CPU backend needs 1-2 s per network run here, several times that on a busy machine. */
export const PARITY_TIMEOUT_MS = 30_000;

export interface ReferenceGraphModel {
  /** Runs the graph on one NHWC float input and returns the named outputs' values, in order. */
  run(input: Float32Array, shape: number[], outputs: string[]): Float32Array[];
}

/** Loads `json` and its shards from `dir` with tfjs' own loader (weight decoding and dequantisation included). */
export async function loadReferenceGraphModel(dir: string, json: string): Promise<ReferenceGraphModel> {
  await tf.setBackend("cpu");
  const model = JSON.parse(readFileSync(join(dir, json), "utf8")) as { modelTopology: object; weightsManifest: WeightsManifestGroup[] };
  const specs = model.weightsManifest.flatMap((group) => group.weights) as tf.io.WeightsManifestEntry[];
  const shards = model.weightsManifest.flatMap((group) => group.paths).map((path) => readFileSync(join(dir, path)));
  const bytes = Buffer.concat(shards);
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const graph = await tf.loadGraphModel(tf.io.fromMemory({ modelTopology: model.modelTopology, weightSpecs: specs, weightData }));
  return {
    run(input, shape, outputs) {
      const tensor = tf.tensor(input, shape, "float32");
      const results = graph.execute(tensor, outputs);
      const list = Array.isArray(results) ? results : [results];
      const values = list.map((result) => result.dataSync() as Float32Array);
      tf.dispose([tensor, ...list]);
      return values;
    },
  };
}

export function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  return a.reduce((max, value, i) => Math.max(max, Math.abs(value - b[i]!)), 0);
}
