/**
 * Gallery search speed: ms per query (k = 5) over 100,000 enrolled faces of 5,000 subjects, for the embedding
 * sizes facefleet uses, on one core.   bun run scripts/bench-gallery.ts [--faces N] [--queries Q]
 * Last line: one JSON object.
 */
import { parseArgs } from "node:util";
import { Gallery } from "../model/gallery.ts";

const { values: args } = parseArgs({ options: { faces: { type: "string", default: "100000" }, queries: { type: "string", default: "200" } } });
const faces = Number(args.faces);
const queries = Number(args.queries);

function randomUnit(dimensions: number): Float32Array {
  const v = new Float32Array(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) norm += (v[i] = Math.random() - 0.5) ** 2;
  return v.map((x) => x / Math.sqrt(norm));
}

const results: Record<string, number> = {};
for (const dimensions of [128, 192]) {
  const gallery = new Gallery(dimensions, faces);
  for (let i = 0; i < faces; i++) gallery.enroll(`subject-${i % 5000}`, randomUnit(dimensions));
  const probes = Array.from({ length: queries }, () => randomUnit(dimensions));
  for (const probe of probes.slice(0, 20)) gallery.search(probe, 5);
  const times: number[] = [];
  for (const probe of probes) {
    const started = performance.now();
    gallery.search(probe, 5);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const p95 = times[Math.floor(times.length * 0.95)]!;
  console.log(`${faces} faces x ${dimensions}-d: mean ${mean.toFixed(2)} ms, median ${times[times.length >> 1]!.toFixed(2)} ms, p95 ${p95.toFixed(2)} ms per query`);
  results[`mean_ms_${dimensions}d`] = Math.round(mean * 100) / 100;
  results[`p95_ms_${dimensions}d`] = Math.round(p95 * 100) / 100;
}
console.log(JSON.stringify({ faces, queries, ...results }));
