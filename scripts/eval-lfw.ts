/**
 * LFW verification accuracy of the configured pipeline:
 *   bun run scripts/eval-lfw.ts --pairs FILE --images DIR [--workers N] [--detector D] [--landmarker L] [--embedder E] [--flip true|false]
 * 10-fold files (`10 300`) use their folds; single-split files (`N`) are cut into 10 balanced folds. The last line is JSON.
 */
import { parseArgs } from "node:util";
import { InferencePool } from "../model/pool.ts";
import { bestThreshold, crossValidate, splitIntoFolds, tarAtFar, type ScoredPair } from "../model/threshold.ts";
import { PIPELINE_OPTIONS, PIPELINE_USAGE, pipelineConfig } from "./pipeline-options.ts";
import { centralFace, readLfwPairs, similarity, type LfwPair } from "./lfw.ts";

const { values: args } = parseArgs({
  options: {
    pairs: { type: "string" },
    images: { type: "string" },
    workers: { type: "string" },
    ...PIPELINE_OPTIONS,
  },
});
if (!args.pairs || !args.images) {
  console.error(`usage: bun run scripts/eval-lfw.ts --pairs FILE --images DIR [--workers N] ${PIPELINE_USAGE}`);
  process.exit(2);
}

const config = pipelineConfig(args);
const { folds: fileFolds, predefinedFolds } = readLfwPairs(args.pairs, args.images);
const allPairs = fileFolds.flat();
const paths = [...new Set(allPairs.flatMap((p) => [p.first, p.second]))];

const pool = await InferencePool.create({ config, workers: args.workers ? Number(args.workers) : undefined });
const workers = pool.stats().workers;
console.log(`pipeline: detector ${config.detector}, landmarker ${config.landmarker}, embedder ${config.embedder}, flip ${config.flip}; ${workers} workers`);
console.log(`${allPairs.length} pairs over ${paths.length} distinct images from ${args.pairs}`);

const embeddings = new Map<string, Float32Array>();
let undetected = 0;
const failures: string[] = [];
let done = 0;
const started = performance.now();
const progress = () => process.stderr.write(`\r${done}/${paths.length} images, ${(done / ((performance.now() - started) / 1000)).toFixed(1)}/s   `);

async function embedEach(queue: string[]): Promise<void> {
  for (let path = queue.pop(); path !== undefined; path = queue.pop()) {
    try {
      const analysis = await pool.analyze(new Uint8Array(await Bun.file(path).arrayBuffer()));
      const face = centralFace(analysis.faces, analysis.width, analysis.height);
      if (!face || face.wholeImage) undetected++;
      if (face) embeddings.set(path, face.embedding);
    } catch (error) {
      failures.push(`${path}: ${(error as Error).message}`);
    }
    done++;
    if (done % 20 === 0) progress();
  }
}
const queue = [...paths].reverse();
// Two images in flight per worker keep every worker busy while the next file is read.
await Promise.all(Array.from({ length: workers * 2 }, () => embedEach(queue)));
const seconds = (performance.now() - started) / 1000;
progress();
process.stderr.write("\n");
await pool.close();

const score = (pair: LfwPair): ScoredPair => {
  const a = embeddings.get(pair.first);
  const b = embeddings.get(pair.second);
  return { score: a && b ? similarity(a, b) : -1, same: pair.same };
};
const folds = (predefinedFolds ? fileFolds : splitIntoFolds(allPairs, 10)).map((fold) => fold.map(score));
const result = crossValidate(folds);
const scored = folds.flat();
const overall = bestThreshold(scored);
const tar = tarAtFar(scored, 1e-3);
const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

console.log(`protocol: ${predefinedFolds ? "the file's" : "10-fold cross-validation over the pairs,"} ${folds.length} folds; threshold chosen on the other folds`);
for (const [i, fold] of result.folds.entries()) console.log(`  fold ${String(i + 1).padStart(2)}: accuracy ${percent(fold.accuracy)} at threshold ${fold.threshold.toFixed(4)}`);
console.log(`accuracy ${percent(result.accuracy)} ± ${percent(result.std)} (mean ± std over folds), mean threshold ${result.threshold.toFixed(4)}`);
console.log(`best single threshold on all pairs: ${overall.threshold.toFixed(4)} (accuracy ${percent(overall.accuracy)})`);
console.log(`TAR ${percent(tar.tar)} at FAR 1e-3 (threshold ${tar.threshold.toFixed(4)})`);
console.log(`faces detected in ${paths.length - undetected - failures.length}/${paths.length} images (${percent((paths.length - undetected - failures.length) / paths.length)}); whole image used for ${undetected}`);
if (failures.length > 0) console.log(`${failures.length} images failed:\n  ${failures.slice(0, 10).join("\n  ")}`);
console.log(`${paths.length} images in ${seconds.toFixed(1)} s: ${(paths.length / seconds).toFixed(1)} images/s with ${workers} workers (the machine is shared: timings are noisy)`);
console.log(
  JSON.stringify({
    accuracy: round(result.accuracy),
    std: round(result.std),
    folds: folds.length,
    threshold: round(result.threshold),
    "tar_at_far_1e-3": round(tar.tar),
    undetected: undetected + failures.length,
    images: paths.length,
    images_per_s: round(paths.length / seconds, 2),
  }),
);

function round(x: number, digits = 5): number {
  return Number(x.toFixed(digits));
}
