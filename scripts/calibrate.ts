/**
 * Measures the activation ranges the int8 networks quantise with, and writes them as model/build/calibration/<network>.json:
 *   bun run scripts/calibrate.ts [--images 300] [--network dlib-resnet]
 * Runs the default float32 pipeline (flip on) over every k-th photo of lfw-devtrain, so each network sees the inputs it
 * sees in service (detector: the photo; landmarks: the face and its mirror; embedder: the aligned crop and its mirror),
 * and records, per tensor that the int8 graph quantises, the min and max over all runs.
 */
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { buildModels } from "../model/build/index.ts";
import { calibrationPath, INT8_NETWORKS, INT8_TARGETS, type Int8Network } from "../model/build/int8.ts";
import { BUILD_TARGETS } from "../model/build/targets.ts";
import { decodeModel, quantisedActivations, withTensorOutputs, type CalibrationTable } from "../model/build/quantize.ts";
import { ONNX_DIR } from "../model/onnx-session.ts";
import { Recognizer } from "../model/recognizer.ts";
import { loadParts } from "../model/registry.ts";
import { pipelineConfig } from "./pipeline-options.ts";
import { observeSessionRuns } from "./yardstick.ts";

const { values: args } = parseArgs({ options: { images: { type: "string", default: "300" }, network: { type: "string" } } });
const imagesDir = join(import.meta.dir, "..", "..", "shared", "datasets", "lfw-devtrain", "images");
const all = readdirSync(imagesDir).sort().flatMap((person) => readdirSync(join(imagesDir, person)).sort().map((f) => join(imagesDir, person, f)));
const count = Number(args.images);
const step = Math.max(1, Math.floor(all.length / count));
const photos = all.filter((_, i) => i % step === 0).slice(0, count);

// The float32 networks only: the int8 ones are made from the tables this script writes.
await buildModels(false, BUILD_TARGETS.filter((target) => !INT8_TARGETS.includes(target)));
const networks = INT8_NETWORKS.filter((n) => !args.network || n.network === args.network);

interface Probe {
  network: Int8Network;
  session: ort.InferenceSession;
  ranges: Map<string, [number, number]>;
  runs: number;
}
const probes: Probe[] = [];
for (const network of networks) {
  const model = decodeModel(await Bun.file(join(ONNX_DIR, network.file)).bytes());
  const names = quantisedActivations(model, network.quantisation);
  const session = await ort.InferenceSession.create(withTensorOutputs(model, names), { intraOpNumThreads: 1, graphOptimizationLevel: "disabled" });
  probes.push({ network, session, ranges: new Map(names.map((n) => [n, [Infinity, -Infinity]])), runs: 0 });
}

// Every float32 run of the pipeline is repeated on the probe graph of the network with that input size.
observeSessionRuns(probes[0]!.session, async (session, input) => {
  const probe = probes.find((p) => p.session !== session && input.dims[1] === p.network.inputSize && input.dims[2] === p.network.inputSize);
  if (!probe) return;
  const outputs = await probe.session.run({ [probe.session.inputNames[0]!]: input });
  for (const [name, range] of probe.ranges) {
    const values = outputs[name]!.data as Float32Array;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < range[0]) range[0] = v;
      if (v > range[1]) range[1] = v;
    }
  }
  probe.runs++;
});

const config = { ...pipelineConfig({ detector: "blazeface-front", landmarker: "landmark68", embedder: "dlib-resnet" }), flip: true };
const recognizer = new Recognizer(await loadParts(config, ONNX_DIR), config);
for (const photo of photos) await recognizer.analyzeBytes(await Bun.file(photo).bytes());

const significant = (x: number) => Number(x.toPrecision(6));
for (const probe of probes) {
  const table: CalibrationTable = {
    network: probe.network.network,
    source: `scripts/calibrate.ts --images ${photos.length}: min/max over ${probe.runs} runs on every ${step}th photo of lfw-devtrain, default pipeline with flip`,
    tensors: Object.fromEntries([...probe.ranges].map(([name, [min, max]]) => [name, [significant(min), significant(max)]])),
  };
  const lines = Object.entries(table.tensors).map(([name, range]) => `    ${JSON.stringify(name)}: ${JSON.stringify(range)}`);
  const head = `{\n  "network": ${JSON.stringify(table.network)},\n  "source": ${JSON.stringify(table.source)},\n  "tensors": {\n`;
  writeFileSync(calibrationPath(probe.network.network), `${head}${lines.join(",\n")}\n  }\n}\n`);
  console.log(`${probe.network.network}: ${probe.ranges.size} tensors, ${probe.runs} runs -> ${calibrationPath(probe.network.network)}`);
}
await buildModels(false, INT8_TARGETS);
