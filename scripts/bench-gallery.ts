/**
 * Gallery search speed on one core: ms per query (k = 5, subjects scored by their templates, as the app searches) over
 * 100,000 enrolled faces of 5,000 subjects, for 128-d (dlib ResNet) and 192-d embeddings, on two kinds of data: uniform
 * random unit vectors, and "clustered" ones shaped like real embeddings (a shared direction, so strangers score ~0.7,
 * people's faces close together). Beside each, one exact float32 pass over every face, the brute-force baseline.
 *   bun run scripts/bench-gallery.ts [--faces N] [--queries Q]
 * Last line: one JSON object.
 */
import { parseArgs } from "node:util";
import { DotKernel } from "../model/dot-kernel.ts";
import { Gallery } from "../model/gallery.ts";

const { values: args } = parseArgs({ options: { faces: { type: "string", default: "100000" }, queries: { type: "string", default: "200" } } });
const faces = Number(args.faces);
const queries = Number(args.queries);
const SUBJECTS = 5000;

function unit(v: Float32Array): Float32Array {
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}
const randomUnit = (dimensions: number) => unit(Float32Array.from({ length: dimensions }, () => Math.random() - 0.5));

/** Draws faces: `face(person)` for enrolment and probes alike. */
function distribution(kind: "uniform" | "clustered", dimensions: number): (person: number) => Float32Array {
  if (kind === "uniform") return () => randomUnit(dimensions);
  const common = randomUnit(dimensions);
  const centers = Array.from({ length: SUBJECTS }, () => randomUnit(dimensions).map((x, i) => x + 1.5 * common[i]!));
  return (person) => {
    const noise = randomUnit(dimensions);
    return unit(centers[person % SUBJECTS]!.map((x, i) => x + 0.5 * noise[i]!));
  };
}

function timeMs(run: (probe: Float32Array) => void, probes: Float32Array[]): { mean: number; median: number; p95: number } {
  for (const probe of probes.slice(0, 20)) run(probe);
  const times = probes.map((probe) => {
    const started = performance.now();
    run(probe);
    return performance.now() - started;
  });
  times.sort((a, b) => a - b);
  return { mean: times.reduce((a, b) => a + b, 0) / times.length, median: times[times.length >> 1]!, p95: times[Math.floor(times.length * 0.95)]! };
}

const round = (x: number) => Math.round(x * 100) / 100;
const results: Record<string, number> = {};
for (const dimensions of [128, 192]) {
  for (const kind of ["uniform", "clustered"] as const) {
    const face = distribution(kind, dimensions);
    const gallery = new Gallery(dimensions, faces);
    const exactOnly = new DotKernel(dimensions, faces);
    for (let i = 0; i < faces; i++) {
      const embedding = face(i);
      gallery.enroll(`subject-${i % SUBJECTS}`, embedding);
      exactOnly.setRow(i, embedding);
    }
    const probes = Array.from({ length: queries }, (_, i) => face(i * 7919));
    const search = timeMs((probe) => gallery.search(probe, 5), probes);
    const exact = timeMs((probe) => exactOnly.scores(probe, faces), probes);
    console.log(
      `${faces} faces x ${dimensions}-d ${kind}: search mean ${search.mean.toFixed(2)} ms, median ${search.median.toFixed(2)} ms, ` +
        `p95 ${search.p95.toFixed(2)} ms per query (the exact float32 pass alone: mean ${exact.mean.toFixed(2)} ms)`,
    );
    results[`mean_ms_${dimensions}d_${kind}`] = round(search.mean);
    results[`p95_ms_${dimensions}d_${kind}`] = round(search.p95);
    results[`exact_pass_ms_${dimensions}d_${kind}`] = round(exact.mean);
  }
}
console.log(JSON.stringify({ faces, subjects: SUBJECTS, queries, k: 5, ...results }));
