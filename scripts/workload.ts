/**
 * Our own workload generator, speaking the course's protocol: `POST {url}/` with multipart field `inputFile`,
 * expecting 200 and `<name>:<person>`. Cycles over a folder's images, counts correct answers against the
 * labels CSV, and reports the course's "average" (total time / requests) and latency percentiles.
 *   bun run scripts/workload.ts --url URL --images DIR --labels CSV [--requests N] [--concurrency C] [--timeout S] [--token T]
 * A request unanswered after --timeout seconds (default 120) counts as failed. Last line: one JSON object.
 * Sends the admin bearer token when it finds one (--token, FACEFLEET_API_TOKEN, the embedded <data dir>/api-token),
 * which a service with FACEFLEET_CLASSIC_AUTH=true needs.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { bearerHeader, clientApiToken } from "./api-token.ts";
import { readCourseLabels } from "./course-labels.ts";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "http://localhost:8000" },
    images: { type: "string" },
    labels: { type: "string" },
    requests: { type: "string" },
    concurrency: { type: "string", default: "100" },
    timeout: { type: "string", default: "120" },
    token: { type: "string" },
  },
});
if (!args.images || !args.labels) {
  console.error("usage: bun run scripts/workload.ts --url URL --images DIR --labels CSV [--requests N] [--concurrency C] [--timeout S] [--token T]");
  process.exit(2);
}
const labels = readCourseLabels(args.labels);
const files = readdirSync(args.images).filter((file) => /\.(jpe?g|png|webp)$/i.test(file)).sort();
if (files.length === 0) throw new Error(`no images in ${args.images}`);
const total = Number(args.requests ?? files.length);
const concurrency = Math.max(1, Number(args.concurrency));
const timeoutMs = Number(args.timeout) * 1000;
const headers = bearerHeader(clientApiToken(args.token));
const images = await Promise.all(
  files.map(async (file) => {
    const blob = Bun.file(join(args.images!, file));
    return { file, type: blob.type, bytes: await blob.bytes() };
  }),
);

const latencies: number[] = [];
let correct = 0;
let failed = 0;
let wrong = 0;
let next = 0;
let done = 0;
const failures = new Map<string, number>();

function progress(done: number): void {
  if (!process.stderr.isTTY && done !== total && done % Math.max(1, Math.floor(total / 20)) !== 0) return;
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`\r[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total} correct ${correct} failed ${failed}${done === total ? "\n" : ""}`);
}

async function worker(): Promise<void> {
  while (next < total) {
    const index = next++;
    const image = images[index % images.length]!;
    const name = image.file.replace(/\.[^.]*$/, "");
    const form = new FormData();
    form.append("inputFile", new File([image.bytes], image.file, { type: image.type }));
    const started = performance.now();
    try {
      const response = await fetch(`${args.url}/`, { method: "POST", body: form, headers, signal: AbortSignal.timeout(timeoutMs) });
      const body = await response.text();
      latencies.push((performance.now() - started) / 1000);
      if (response.status !== 200) {
        failed++;
        failures.set(`HTTP ${response.status}`, (failures.get(`HTTP ${response.status}`) ?? 0) + 1);
      } else if (body === `${name}:${labels.get(name)}`) correct++;
      else wrong++;
    } catch (error) {
      failed++;
      const key = (error as Error).message;
      failures.set(key, (failures.get(key) ?? 0) + 1);
    }
    progress(++done);
  }
}

const started = performance.now();
await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
const totalSeconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
const round = (x: number) => Math.round(x * 10000) / 10000;

console.log(`requests ${total}, concurrency ${concurrency}: ${correct} correct, ${wrong} wrong, ${failed} failed`);
for (const [reason, count] of failures) console.log(`  failure: ${reason} x${count}`);
console.log(`total ${totalSeconds.toFixed(2)} s, average (total / requests) ${(totalSeconds / total).toFixed(4)} s`);
console.log(`latency p50 ${percentile(0.5).toFixed(3)} s, p95 ${percentile(0.95).toFixed(3)} s, p99 ${percentile(0.99).toFixed(3)} s`);
console.log(
  JSON.stringify({
    requests: total,
    correct,
    failed,
    average_s: round(totalSeconds / total),
    p50_s: round(percentile(0.5)),
    p95_s: round(percentile(0.95)),
    p99_s: round(percentile(0.99)),
    total_s: round(totalSeconds),
  }),
);
