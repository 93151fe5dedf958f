/**
 * Each network alone, float32 and int8, under onnxruntime session variants (graph level, allocator options), one
 * thread, interleaved run by run so that the machine's load falls on all alike:
 *   bun run scripts/bench-networks.ts [--rounds 60]
 * CPU time of the process per run (other work on the machine does not count) next to wall time; the last line is JSON.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { buildModels } from "../model/build/index.ts";
import { INT8_NETWORKS } from "../model/build/int8.ts";
import { int8File, ONNX_DIR } from "../model/onnx-session.ts";

const { values: args } = parseArgs({ options: { rounds: { type: "string", default: "60" } } });
const rounds = Number(args.rounds);

/** The session options each network is timed with; the first is what openSession uses by default. */
const VARIANTS: Record<string, ort.InferenceSession.SessionOptions> = {
  all: { graphOptimizationLevel: "all" },
  extended: { graphOptimizationLevel: "extended" },
  "all, no memory arena": { graphOptimizationLevel: "all", enableCpuMemArena: false },
  "all, denormals as zero": { graphOptimizationLevel: "all", extra: { session: { set_denormal_as_zero: "1" } } },
  "all, environment allocators": { graphOptimizationLevel: "all", extra: { session: { use_env_allocators: "1" } } },
};
/** Images per run as the default pipeline runs them: the photo; a face and its mirror; a crop and its mirror. */
const BATCH: Record<string, number> = { "blazeface-front": 1, landmark68: 2, "dlib-resnet": 2 };

await buildModels();
/** The same pseudo-random input every time, in each network's range (BlazeFace takes -1..1, the others 0..255). */
function input(length: number, scale: number, shift: number): Float32Array {
  let state = 12345;
  return Float32Array.from({ length }, () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * scale + shift);
}

interface Case {
  name: string;
  session: ort.InferenceSession;
  feeds: Record<string, ort.Tensor>;
  cpu: number[];
  wall: number[];
}
const cases: Case[] = [];
for (const network of INT8_NETWORKS) {
  const batch = BATCH[network.network]!;
  const size = network.inputSize;
  const pixels = network.network === "blazeface-front" ? input(batch * size * size * 3, 2, -1) : input(batch * size * size * 3, 255, 0);
  for (const [precision, file] of [["float32", network.file], ["int8", int8File(network.file)]] as const) {
    for (const [variant, options] of Object.entries(VARIANTS)) {
      const session = await ort.InferenceSession.create(join(ONNX_DIR, file), { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3, ...options });
      const feeds = { [session.inputNames[0]!]: new ort.Tensor("float32", pixels, [batch, size, size, 3]) };
      await session.run(feeds);
      cases.push({ name: `${network.network} ${precision} (batch ${batch}), ${variant}`, session, feeds, cpu: [], wall: [] });
    }
  }
}
for (let round = 0; round < rounds; round++) {
  for (const c of cases) {
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    await c.session.run(c.feeds);
    const cpu = process.cpuUsage(cpuBefore);
    c.wall.push(performance.now() - started);
    c.cpu.push((cpu.user + cpu.system) / 1000);
  }
}
const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * q)]!;
const figures = cases.map((c) => ({ case: c.name, cpu_ms_p10: +quantile(c.cpu, 0.1).toFixed(3), cpu_ms_median: +quantile(c.cpu, 0.5).toFixed(3), wall_ms_median: +quantile(c.wall, 0.5).toFixed(3) }));
for (const f of figures) console.log(`${f.case.padEnd(64)} CPU p10 ${f.cpu_ms_p10.toFixed(2)} ms, median ${f.cpu_ms_median.toFixed(2)} ms | wall median ${f.wall_ms_median.toFixed(2)} ms`);
console.log(JSON.stringify({ rounds, figures }));
