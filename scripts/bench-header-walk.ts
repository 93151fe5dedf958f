/**
 * How long the header walk (model/image-header.ts) takes on the inputs that cost it most: its first run in this
 * process (code not yet compiled, as on a fresh instance) and the median of --runs after it:
 *   bun run scripts/bench-header-walk.ts [--runs 5]
 * 10 MB of JPEG fill bytes (0xFF, each a marker prefix to look at), 10 MB of entropy-coded data after a valid JPEG's
 * headers (skipped with one indexOf pass), and the zTXt bomb (50 chunks of 20 MB inflated each, refused after 1 MiB).
 * Prints one JSON line of milliseconds.
 */
import { parseArgs } from "node:util";
import { readImageHeader } from "../model/image-header.ts";
import { plainJpeg, pngTextBomb } from "../tests/support/hostile-images.ts";

const { values: args } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
const runs = Number(args.runs);
const options = { maxPixels: 40_000_000, whole: true };

const fill = Buffer.alloc(10 * 1024 * 1024, 0xff);
fill.set([0xff, 0xd8, 0xff], 0);
const entropy = Buffer.concat([(await plainJpeg()).subarray(0, -2), Buffer.alloc(10 * 1024 * 1024, 0)]);
const bomb = pngTextBomb();

function timesMs(walk: () => void): { first: number; median: number } {
  const times = Array.from({ length: runs + 1 }, () => {
    const started = performance.now();
    try {
      walk();
    } catch {
      // A refusal is the walk's answer to these inputs: only its time is measured.
    }
    return performance.now() - started;
  });
  const rounded = (ms: number) => Math.round(ms * 10) / 10;
  const after = times.slice(1).sort((a, b) => a - b);
  return { first: rounded(times[0]!), median: rounded(after[Math.floor(runs / 2)]!) };
}

console.log(
  JSON.stringify({
    jpeg_fill_10mb_ms: timesMs(() => readImageHeader(fill, options)),
    jpeg_entropy_10mb_ms: timesMs(() => readImageHeader(entropy, options)),
    png_ztxt_bomb_ms: timesMs(() => readImageHeader(bomb, options)),
  }),
);
