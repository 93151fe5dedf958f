/**
 * The JSON API's latency beside the classic route's, in one run, against a running service:
 *   bun run scripts/bench-api.ts --url URL --dir DIR [--subjects N] [--requests N] [--concurrency 1,50] [--rounds R] [--token T]
 * DIR is an LFW-layout folder (one folder per person). The first photo of each of the first --subjects people with two
 * or more photos is enrolled (largest face); their other photos are the queries. At each concurrency the two routes
 * take turns, --rounds rounds of --requests requests each (classic then /v1/recognize, then the other way round), so
 * load from anything else on the machine, and a fleet scaled in, fall on both alike. Run the service with the analysis cache off
 * (FACEFLEET_ANALYSIS_CACHE_ENTRIES=0): otherwise the second route would get the first one's analysis for free.
 * Last line: one JSON object.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { bearerHeader, clientApiToken } from "./api-token.ts";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "http://localhost:8000" },
    dir: { type: "string" },
    subjects: { type: "string", default: "50" },
    requests: { type: "string", default: "100" },
    concurrency: { type: "string", default: "1,50" },
    rounds: { type: "string", default: "2" },
    token: { type: "string" },
  },
});
if (!args.dir) {
  console.error("usage: bun run scripts/bench-api.ts --url URL --dir DIR [--subjects N] [--requests N] [--concurrency 1,50] [--rounds R] [--token T]");
  process.exit(2);
}
const headers = bearerHeader(clientApiToken(args.token));
const people = readdirSync(args.dir)
  .filter((name) => statSync(join(args.dir!, name)).isDirectory())
  .sort()
  .map((name) => ({ name, files: readdirSync(join(args.dir!, name)).filter((file) => /\.(jpe?g|png|webp)$/i.test(file)).sort() }))
  .filter((person) => person.files.length >= 2)
  .slice(0, Number(args.subjects));
if (people.length === 0) throw new Error(`no person with two photos in ${args.dir}`);

const photo = async (person: string, file: string) => new File([await Bun.file(join(args.dir!, person, file)).bytes()], file, { type: "image/jpeg" });

for (const person of people) {
  const form = new FormData();
  form.append("image", await photo(person.name, person.files[0]!));
  const response = await fetch(`${args.url}/v1/subjects/${encodeURIComponent(person.name)}/faces?face=largest`, { method: "POST", body: form, headers });
  if (response.status === 401) throw new Error("the service refused the bearer token: pass --token or set FACEFLEET_API_TOKEN");
  if (!response.ok) console.error(`${person.files[0]}: not enrolled: ${response.status} ${await response.text()}`);
}
const queries = await Promise.all(people.flatMap((person) => person.files.slice(1).map(async (file) => ({ person: person.name, file: await photo(person.name, file) }))));

type Route = "classic" | "recognize";

/** One request; whether its answer named the right person. */
async function ask(route: Route, query: (typeof queries)[number]): Promise<boolean> {
  const form = new FormData();
  form.append(route === "classic" ? "inputFile" : "image", query.file);
  const response = await fetch(route === "classic" ? `${args.url}/` : `${args.url}/v1/recognize?k=1`, { method: "POST", body: form, headers });
  if (!response.ok) throw new Error(`${route}: HTTP ${response.status} ${await response.text()}`);
  if (route === "classic") return (await response.text()).endsWith(`:${query.person}`);
  const body = (await response.json()) as { faces: { match: { subject: string } | null }[] };
  return body.faces[0]?.match?.subject === query.person;
}

async function round(route: Route, requests: number, concurrency: number, offset: number, latencies: number[]): Promise<number> {
  let next = 0;
  let correct = 0;
  const worker = async () => {
    while (next < requests) {
      const query = queries[(offset + next++) % queries.length]!;
      const started = performance.now();
      if (await ask(route, query)) correct++;
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, requests) }, worker));
  return correct;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
const ms = (x: number) => Math.round(x * 10) / 10;
const requests = Number(args.requests);
const results = [];
// Warm both routes (worker threads, JIT, connections) before anything is timed.
await round("classic", 10, 2, 0, []);
await round("recognize", 10, 2, 0, []);
for (const concurrency of args.concurrency.split(",").map(Number)) {
  const latencies: Record<Route, number[]> = { classic: [], recognize: [] };
  const correct: Record<Route, number> = { classic: 0, recognize: 0 };
  for (let r = 0; r < Number(args.rounds); r++) {
    // The first route of a round may meet a fleet scaled in; each route goes first every other round.
    const order = r % 2 === 0 ? (["classic", "recognize"] as const) : (["recognize", "classic"] as const);
    for (const route of order) correct[route] += await round(route, requests, concurrency, r * requests, latencies[route]);
  }
  const summary = Object.fromEntries(
    (["classic", "recognize"] as const).map((route) => {
      const sorted = latencies[route].sort((a, b) => a - b);
      const mean = sorted.reduce((sum, x) => sum + x, 0) / sorted.length;
      return [route, { requests: sorted.length, correct: correct[route], mean_ms: ms(mean), p50_ms: ms(percentile(sorted, 0.5)), p95_ms: ms(percentile(sorted, 0.95)) }];
    }),
  ) as Record<Route, { requests: number; correct: number; mean_ms: number; p50_ms: number; p95_ms: number }>;
  const ratio = Math.round((summary.recognize.mean_ms / summary.classic.mean_ms) * 1000) / 1000;
  console.log(
    `concurrency ${concurrency}: classic mean ${summary.classic.mean_ms} ms (p50 ${summary.classic.p50_ms}, p95 ${summary.classic.p95_ms}), ` +
      `/v1/recognize mean ${summary.recognize.mean_ms} ms (p50 ${summary.recognize.p50_ms}, p95 ${summary.recognize.p95_ms}): ratio ${ratio}`,
  );
  results.push({ concurrency, ...summary, ratio });
}
console.log(JSON.stringify({ subjects: people.length, queries: queries.length, results }));
