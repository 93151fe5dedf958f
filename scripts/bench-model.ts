/**
 * Speed of the configured pipeline next to face-api on tfjs-wasm, on the course's 64x64 crops and on 250x250 LFW photos:
 *   bun run scripts/bench-model.ts [--images N] [--face-api-images N] [--workers N] [--detector D] [--landmarker L] [--embedder E] [--flip true|false]
 *   bun run scripts/bench-model.ts --compare [--images N] [--rounds N] [--ghz G]   (float32 next to int8, and the core's peak: compare-int8.ts)
 * Per-stage milliseconds come from one thread; images/s from the worker pool with 1 and N workers. The last line is JSON.
 */
import { readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildModels } from "../model/build/index.ts";
import { ONNX_DIR } from "../model/onnx-session.ts";
import { Gallery } from "../model/gallery.ts";
import { InferencePool } from "../model/pool.ts";
import { Recognizer } from "../model/recognizer.ts";
import { loadParts } from "../model/registry.ts";
import type { RgbImage } from "../model/types.ts";
import { PIPELINE_OPTIONS, pipelineConfig } from "./pipeline-options.ts";
import { loadFaceApiWasm, type FaceApiAnalyzer } from "./face-api-wasm.ts";
import { compareInt8 } from "./compare-int8.ts";

const { values: args } = parseArgs({
  options: {
    images: { type: "string", default: "100" },
    "face-api-images": { type: "string", default: "20" },
    workers: { type: "string" },
    "gallery-size": { type: "string", default: "10000" },
    compare: { type: "boolean", default: false },
    rounds: { type: "string", default: "3" },
    ghz: { type: "string" },
    ...PIPELINE_OPTIONS,
  },
});
const DATASETS = join(import.meta.dir, "..", "..", "shared", "datasets");
const config = pipelineConfig(args);
const imageCount = Number(args.images);
const faceApiCount = Number(args["face-api-images"]);
const workers = Number(args.workers ?? (config.workers || availableParallelism()));
const gallerySize = Number(args["gallery-size"]);

const readAll = (paths: string[]) => Promise.all(paths.map(async (p) => new Uint8Array(await Bun.file(p).arrayBuffer())));
const courseDir = join(DATASETS, "cse546", "face_images_100");
const lfwDir = join(DATASETS, "lfw-devtrain", "images");
const sets = {
  course: await readAll(readdirSync(courseDir).filter((f) => f.endsWith(".jpg")).sort().slice(0, imageCount).map((f) => join(courseDir, f))),
  lfw: await readAll(
    readdirSync(lfwDir).sort().flatMap((person) => readdirSync(join(lfwDir, person)).sort().map((f) => join(lfwDir, person, f))).slice(0, imageCount),
  ),
};

await buildModels();
if (args.compare) {
  await compareInt8(config, sets.lfw, Number(args.rounds), args.ghz ? Number(args.ghz) : undefined);
  process.exit(0);
}
console.log(`pipeline: detector ${config.detector}, landmarker ${config.landmarker}, embedder ${config.embedder}, flip ${config.flip}`);
console.log(`${availableParallelism()} cores; the machine is shared with other work, so every figure is noisy`);
const recognizer = new Recognizer(await loadParts(config, ONNX_DIR), config);
const { embedder } = recognizer.parts;
const gallery = new Gallery(embedder.dimensions);
for (let i = 0; i < gallerySize; i++) gallery.enroll(`person-${i % 1000}`, randomUnitVector(embedder.dimensions));
const faceApi: FaceApiAnalyzer = await loadFaceApiWasm(config.maxPixels);

interface SetFigures {
  images: number;
  stages_ms: { decode: number; detect: number; align: number; embed: number; match: number; total: number };
  images_per_s_1_worker: number;
  images_per_s_n_workers: number;
  face_api_wasm_images_per_s: number;
  ratio_1_worker: number;
  ratio_n_workers: number;
}
const figures: Record<string, SetFigures> = {};
for (const [name, images] of Object.entries(sets)) {
  const stages = await stageTimes(images);
  const one = await poolThroughput(images, 1);
  const many = await poolThroughput(images, workers);
  const reference = await faceApiThroughput(images.slice(0, faceApiCount));
  figures[name] = {
    images: images.length,
    stages_ms: stages,
    images_per_s_1_worker: round(one),
    images_per_s_n_workers: round(many),
    face_api_wasm_images_per_s: round(reference),
    ratio_1_worker: round(one / reference),
    ratio_n_workers: round(many / reference),
  };
  console.log(`\n${name}: ${images.length} images`);
  console.log(`  one thread, ms per image: ${Object.entries(stages).map(([stage, ms]) => `${stage} ${ms.toFixed(2)}`).join(", ")}`);
  console.log(`  facefleet: ${one.toFixed(1)} images/s with 1 worker, ${many.toFixed(1)} with ${workers}`);
  console.log(`  face-api on tfjs-wasm (SSD MobileNet v1 + 68 landmarks + descriptor, ${Math.min(faceApiCount, images.length)} images): ${reference.toFixed(2)} images/s`);
  console.log(`  ratio: ${(one / reference).toFixed(1)}x with 1 worker, ${(many / reference).toFixed(1)}x with ${workers}`);
}
const batching = await batchingGain();
console.log(`\nbatching (embedder, ${batching.crops} crops): ${batching.single_ms_per_crop.toFixed(2)} ms per crop one at a time, ${batching.batched_ms_per_crop.toFixed(2)} ms per crop in one batch`);
console.log(JSON.stringify({ pipeline: { detector: config.detector, landmarker: config.landmarker, embedder: config.embedder, flip: config.flip }, workers, gallery_size: gallerySize, ...figures, batching }));

/** Mean per-stage milliseconds on this thread, after a warm-up pass; match = one gallery search per face. */
async function stageTimes(images: Uint8Array[]): Promise<SetFigures["stages_ms"]> {
  for (const bytes of images.slice(0, 5)) await recognizer.analyzeBytes(bytes);
  const sum = { decode: 0, detect: 0, align: 0, embed: 0, match: 0, total: 0 };
  for (const bytes of images) {
    const started = performance.now();
    const { timings, faces } = await recognizer.analyzeBytes(bytes);
    const matchStarted = performance.now();
    for (const face of faces) gallery.search(face.embedding, 5);
    const matchMs = performance.now() - matchStarted;
    sum.decode += timings.decodeMs;
    sum.detect += timings.detectMs;
    sum.align += timings.alignMs;
    sum.embed += timings.embedMs;
    sum.match += matchMs;
    sum.total += performance.now() - started;
  }
  const mean = (x: number) => round(x / images.length, 3);
  return { decode: mean(sum.decode), detect: mean(sum.detect), align: mean(sum.align), embed: mean(sum.embed), match: mean(sum.match), total: mean(sum.total) };
}

async function poolThroughput(images: Uint8Array[], count: number): Promise<number> {
  const pool = await InferencePool.create({ config, workers: count });
  try {
    await Promise.all(images.slice(0, count * 2).map((bytes) => pool.analyze(bytes)));
    const started = performance.now();
    await Promise.all(images.map((bytes) => pool.analyze(bytes)));
    return images.length / ((performance.now() - started) / 1000);
  } finally {
    await pool.close();
  }
}

async function faceApiThroughput(images: Uint8Array[]): Promise<number> {
  await faceApi(images[0]!);
  const started = performance.now();
  for (const bytes of images) await faceApi(bytes);
  return images.length / ((performance.now() - started) / 1000);
}

/** Whether several crops in one embedder run cost less per crop than one crop per run (the pool's workers take one image at a time). */
async function batchingGain(crops = 8): Promise<{ crops: number; single_ms_per_crop: number; batched_ms_per_crop: number }> {
  const crop = (): RgbImage => ({ data: Uint8Array.from({ length: embedder.inputSize ** 2 * 3 }, () => Math.floor(Math.random() * 256)), width: embedder.inputSize, height: embedder.inputSize });
  const batch = Array.from({ length: crops }, crop);
  const rounds = 5;
  await embedder.embed(batch);
  let started = performance.now();
  for (let r = 0; r < rounds; r++) for (const one of batch) await embedder.embed([one]);
  const single = (performance.now() - started) / (rounds * crops);
  started = performance.now();
  for (let r = 0; r < rounds; r++) await embedder.embed(batch);
  const batched = (performance.now() - started) / (rounds * crops);
  return { crops, single_ms_per_crop: round(single, 3), batched_ms_per_crop: round(batched, 3) };
}

function randomUnitVector(dimensions: number): Float32Array {
  const v = Float32Array.from({ length: dimensions }, () => Math.random() * 2 - 1);
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

function round(x: number, digits = 2): number {
  return Number(x.toFixed(digits));
}
