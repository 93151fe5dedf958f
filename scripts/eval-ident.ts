/**
 * Identification accuracy of the configured pipeline on an LFW-layout folder (one folder per person):
 *   bun run scripts/eval-ident.ts --images DIR [--gallery-photos N] [--probes N] [--workers N] [--scoring template|best-face]
 *     [--false-alarm-rate R] [--cache FILE] [--detector D] [--landmarker L] [--embedder E] [--flip true|false]
 * The gallery is the first N photos (default 1) of each person who has more than N; the probes are their other photos
 * (at most --probes per person); people with one photo are strangers, never enrolled. Prints closed-set rank-1 and
 * rank-5, open-set DIR at false-alarm rates 1e-2 and 1e-3, how the false-alarm rate grows with the gallery at the
 * configured threshold and at a false-alarm target, and the embedder's calibration (the threshold at pairwise false
 * accept rates 1e-1 to 1e-6 over every pair of images of two different people: registry.ts's `calibration`). Progress
 * goes to stderr; the last line is JSON.
 * --cache FILE keeps the embeddings (and the images/s they were made at) for runs with the same pipeline and images.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Gallery, type SubjectScoring } from "../model/gallery.ts";
import { falseAlarmThreshold } from "../model/open-set.ts";
import { InferencePool } from "../model/pool.ts";
import { EMBEDDERS, thresholdFor } from "../model/registry.ts";
import { detectionAndIdentificationAtFar, falseAlarmRate, farCalibration, rankAccuracy, type IdentificationProbe } from "../model/threshold.ts";
import { centralFace, differentPersonSimilarities, identificationSplit, readLfwPeople } from "./lfw.ts";
import { PIPELINE_OPTIONS, PIPELINE_USAGE, pipelineConfig } from "./pipeline-options.ts";

const { values: args } = parseArgs({
  options: {
    images: { type: "string" },
    "gallery-photos": { type: "string", default: "1" },
    probes: { type: "string" },
    workers: { type: "string" },
    scoring: { type: "string", default: "template" },
    "false-alarm-rate": { type: "string", default: "0.01" },
    cache: { type: "string" },
    ...PIPELINE_OPTIONS,
  },
});
const scoring = args.scoring as SubjectScoring;
if (!args.images || (scoring !== "template" && scoring !== "best-face")) {
  console.error(`usage: bun run scripts/eval-ident.ts --images DIR [--gallery-photos N] [--probes N] [--workers N] [--scoring template|best-face] [--false-alarm-rate R] [--cache FILE] ${PIPELINE_USAGE}`);
  process.exit(2);
}

const config = pipelineConfig(args);
const galleryPhotos = Number(args["gallery-photos"]);
const split = identificationSplit(readLfwPeople(args.images), galleryPhotos, args.probes ? Number(args.probes) : Infinity);
const paths = [...new Set([...split.gallery.flatMap((person) => person.photos), ...split.probes.map((probe) => probe.photo), ...split.strangers])];
console.log(`pipeline: detector ${config.detector}, landmarker ${config.landmarker}, embedder ${config.embedder}, flip ${config.flip}; subjects scored by ${scoring}`);
console.log(`${split.gallery.length} people enrolled from ${galleryPhotos} photo(s) each, ${split.probes.length} probes of them, ${split.strangers.length} strangers; ${paths.length} images`);

const { embeddings, imagesPerSecond } = await embedAll(paths);
const missing = paths.filter((path) => !embeddings.has(path));
if (missing.length > 0) console.log(`${missing.length} images gave no face and are left out: ${missing.slice(0, 5).join(", ")}`);

const dimensions = embeddings.values().next().value?.length;
if (dimensions === undefined) {
  console.error("no image gave a face: nothing to evaluate");
  process.exit(1);
}
const gallery = new Gallery(dimensions);
for (const person of split.gallery) for (const photo of person.photos) if (embeddings.has(photo)) gallery.enroll(person.name, embeddings.get(photo)!);
const search = (g: Gallery, photo: string) => g.search(embeddings.get(photo)!, 5, scoring);
const known: IdentificationProbe[] = split.probes.filter((p) => embeddings.has(p.photo)).map((p) => ({ subject: p.subject, candidates: search(gallery, p.photo) }));
const strangers: IdentificationProbe[] = split.strangers.filter((photo) => embeddings.has(photo)).map((photo) => ({ candidates: search(gallery, photo) }));
const probes = [...known, ...strangers];

const percent = (x: number) => `${(100 * x).toFixed(2)}%`;
const rank1 = rankAccuracy(probes, 1);
const rank5 = rankAccuracy(probes, 5);
console.log(`closed set: rank-1 ${percent(rank1)}, rank-5 ${percent(rank5)} over ${known.length} probes of ${gallery.subjectCount} people`);
const openSet = strangers.length > 0 ? ([1e-2, 1e-3] as const).map((far) => ({ far, ...detectionAndIdentificationAtFar(probes, far) })) : [];
for (const { far, dir, threshold } of openSet) console.log(`open set: DIR ${percent(dir)} at false-alarm rate ${far} (threshold ${threshold.toFixed(4)}, ${strangers.length} strangers)`);

if (strangers.length > 0) reportGalleryGrowth();

const impostors = differentPersonSimilarities(embeddings);
const calibration = impostors.length > 0 ? farCalibration(impostors, [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]).map(([far, threshold]) => [far, round(threshold, 4)] as const) : [];
if (impostors.length > 0) console.log(`calibration over ${impostors.length} different-person pairs: ${calibration.map(([far, threshold]) => `${far} -> ${threshold}`).join(", ")}`);

console.log(
  JSON.stringify({
    people: gallery.subjectCount,
    probes: known.length,
    rank1: round(rank1),
    rank5: round(rank5),
    "dir_at_far_1e-2": openSet[0] ? round(openSet[0].dir) : null,
    "dir_at_far_1e-3": openSet[1] ? round(openSet[1].dir) : null,
    "threshold_at_far_1e-3": openSet[1] ? round(openSet[1].threshold) : null,
    calibration,
    images_per_s: round(imagesPerSecond, 2),
  }),
);

/**
 * Strangers against galleries of growing size (the first S enrolled people of a fixed shuffle, several shuffles): the
 * share wrongly named at the configured threshold, and at a threshold that follows the false-alarm target.
 */
function reportGalleryGrowth(): void {
  const target = Number(args["false-alarm-rate"]);
  const calibration = EMBEDDERS[config.embedder]?.calibration;
  const held = calibration ? falseAlarmThreshold(calibration, target) : undefined;
  const fixed = thresholdFor(config);
  const names = split.gallery.map((person) => person.name);
  const sizes = [10, 30, 100, 300, 1000, 3000].filter((size) => size < names.length).concat(names.length);
  console.log(`false alarms of ${strangers.length} strangers by gallery size (mean of 5 shuffles): at the configured threshold${held ? ` | holding ${target}` : ""}`);
  for (const size of sizes) {
    let fixedRate = 0;
    let heldRate = 0;
    for (let seed = 1; seed <= 5; seed++) {
      const chosen = new Set(shuffled(names, seed).slice(0, size));
      const sub = new Gallery(gallery.dimensions);
      for (const person of split.gallery) if (chosen.has(person.name)) for (const photo of person.photos) if (embeddings.has(photo)) sub.enroll(person.name, embeddings.get(photo)!);
      const ranked = split.strangers.filter((photo) => embeddings.has(photo)).map((photo) => ({ candidates: sub.search(embeddings.get(photo)!, 1, scoring) }));
      fixedRate += falseAlarmRate(ranked, fixed.at(size)) / 5;
      if (held) heldRate += falseAlarmRate(ranked, held.at(size)) / 5;
    }
    const heldColumn = held ? ` | ${percent(heldRate)} (threshold ${held.at(size).toFixed(4)})` : "";
    console.log(`  ${String(size).padStart(5)} subjects: ${percent(fixedRate)} (threshold ${fixed.at(size).toFixed(4)})${heldColumn}`);
  }
}

/** The central face's embedding of every image, from the cache when it holds this pipeline's, else through the pool. */
async function embedAll(paths: string[]): Promise<{ embeddings: Map<string, Float32Array>; imagesPerSecond: number }> {
  const key = JSON.stringify({ detector: config.detector, landmarker: config.landmarker, embedder: config.embedder, flip: config.flip, custom: config.customEmbedder });
  const cached = args.cache && existsSync(args.cache) ? (JSON.parse(readFileSync(args.cache, "utf8")) as EmbeddingCache) : undefined;
  const embeddings = new Map<string, Float32Array>();
  if (cached?.key === key) for (const [path, values] of Object.entries(cached.embeddings)) embeddings.set(path, Float32Array.from(values));
  const todo = paths.filter((path) => !embeddings.has(path) && !cached?.faceless.includes(path));
  if (todo.length === 0 && cached?.key === key) {
    console.log(`embeddings from ${args.cache} (made at ${cached.imagesPerSecond.toFixed(1)} images/s)`);
    return { embeddings, imagesPerSecond: cached.imagesPerSecond };
  }
  const pool = await InferencePool.create({ config, workers: args.workers ? Number(args.workers) : undefined });
  const workers = pool.stats().workers;
  const faceless: string[] = [];
  let done = 0;
  const started = performance.now();
  const progress = () => process.stderr.write(`\r${done}/${todo.length} images, ${(done / ((performance.now() - started) / 1000)).toFixed(1)}/s   `);
  const queue = [...todo].reverse();
  const embedEach = async () => {
    for (let path = queue.pop(); path !== undefined; path = queue.pop()) {
      try {
        const analysis = await pool.analyze(new Uint8Array(await Bun.file(path).arrayBuffer()));
        const face = centralFace(analysis.faces, analysis.width, analysis.height);
        if (face) embeddings.set(path, face.embedding);
        else faceless.push(path);
      } catch (error) {
        console.log(`${path}: ${(error as Error).message}`);
        faceless.push(path);
      }
      if (++done % 20 === 0) progress();
    }
  };
  // Two images in flight per worker keep every worker busy while the next file is read.
  await Promise.all(Array.from({ length: workers * 2 }, embedEach));
  const seconds = (performance.now() - started) / 1000;
  progress();
  process.stderr.write("\n");
  await pool.close();
  const imagesPerSecond = todo.length / seconds;
  console.log(`${todo.length} images embedded in ${seconds.toFixed(1)} s: ${imagesPerSecond.toFixed(1)} images/s with ${workers} workers (the machine is shared: timings are noisy)`);
  if (args.cache) {
    const record: EmbeddingCache = { key, imagesPerSecond, faceless, embeddings: Object.fromEntries([...embeddings].map(([path, e]) => [path, Array.from(e)])) };
    writeFileSync(args.cache, JSON.stringify(record));
  }
  return { embeddings, imagesPerSecond };
}

interface EmbeddingCache {
  key: string;
  imagesPerSecond: number;
  faceless: string[];
  embeddings: Record<string, number[]>;
}

/** A deterministic shuffle (a small linear congruential generator seeded by `seed`). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function round(x: number, digits = 5): number {
  return Number(x.toFixed(digits));
}
