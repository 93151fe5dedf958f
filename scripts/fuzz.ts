/**
 * A fuzzer for the service's inputs: hostile images on every route that takes one, and malformed requests, while the
 * service's memory, answers and health counters are watched.
 *   bun run scripts/fuzz.ts [--minutes 2] [--seed 1] [--split | --url URL --token T [--pid PID]] [--concurrency 4]
 *     [--cases 100000] [--case N] [--timeout-seconds 35] [--rss-limit-mb 2048] [--bomb-mb 200] [--max-file-mb 9.5]
 *     [--max-scans 5000]
 * Without --url it starts the embedded service (`bun index.ts`, as `bun start` runs it) on a free loopback port with a
 * fresh data folder and enrolls the sample set's people (tests/fixtures/people); its web figure is then the whole
 * service's (every role is that one process). --split runs the service as on EC2 instead (scripts/service-processes.ts):
 * `bun index.ts --role web+controller` (the web instance's roles) in its own process on the emulated region, with one
 * `bun index.ts --role app` beside it answering the jobs; peak_web_rss_mb is then the web process's alone and
 * peak_total_rss_mb the sum of both. That app process is not an EC2 instance of the region: it writes no job report and
 * the controller has no fleet to scale or replace (FACEFLEET_MAX_APP_INSTANCES=0), so its unhealthy marks are counted
 * from its log (`instance_unhealthy`) and instances_replaced is 0 by construction. With --url it fuzzes that service
 * (loopback only); --pid names its process for the memory figures (else they are 0).
 * Cases (scripts/fuzz/cases.ts) are a function of the seed and their index: `--case N` replays case N alone. Hostile
 * images start from the sample set's photos, converted to PNG and WebP with sharp (scripts/fuzz/images.ts); their
 * compressed metadata inflates to at most --bomb-mb in all. The run stops by itself after --minutes (cases under way
 * finish, each bounded by --timeout-seconds), after --cases, or at once when the service's memory passes
 * --rss-limit-mb (a service it started is then killed: a failure).
 * Prints each 5xx, timeout, well-formed request closed without an answer and anonymous answer from past the bearer
 * guard (under /v1: not 401, not a routing 404) on stderr, then
 * on stdout a line `findings {…}` (those counts, the requests Bun's HTTP parser refused before the service saw them, the slowest answer to an ordinary upload sent while more bodies
 * trickle than the service has upload slots, and the statuses by case kind) and, last, one JSON object:
 *   {"cases","answered_2xx","answered_4xx","answered_5xx","timeouts","unhealthy_marks","instances_replaced","peak_web_rss_mb","peak_total_rss_mb"}
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadConfig } from "../roles/config.ts";
import { fuzzCase, type CaseOutcome, type FuzzCase, type FuzzTarget, type UploadRoute } from "./fuzz/cases.ts";
import { makeSeeds } from "./fuzz/images.ts";
import { healthCounters, MemoryWatch, type HealthCounters } from "./fuzz/watch.ts";
import { signalGroup, startGroup, startSplitService, stopGroup, waitForHealth, type SplitService } from "./service-processes.ts";

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "2" },
    seed: { type: "string", default: "1" },
    split: { type: "boolean", default: false },
    url: { type: "string" },
    token: { type: "string" },
    pid: { type: "string" },
    concurrency: { type: "string", default: "4" },
    cases: { type: "string", default: "100000" },
    case: { type: "string" },
    "timeout-seconds": { type: "string", default: "35" },
    "rss-limit-mb": { type: "string", default: "2048" },
    "bomb-mb": { type: "string", default: "200" },
    "max-file-mb": { type: "string", default: "9.5" },
    "max-scans": { type: "string", default: "5000" },
  },
});

const REPO_ROOT = resolve(import.meta.dir, "..");
const PEOPLE_DIR = join(REPO_ROOT, "tests", "fixtures", "people");
const SEED_PHOTOS = ["queries/query_1.jpg", "queries/query_4.jpg", "groups/two_faces.jpg", "strangers/stranger_1.jpg"].map((path) => join(REPO_ROOT, "tests", "fixtures", path));
/** How often memory is sampled. */
const SAMPLE_MS = 100;
/** After the last answer, time for the controller to act on an instance's last report before the counters are read. */
const SETTLE_MS = 3000;
/** Failures printed one by one; past this, only counted. */
const PRINTED_FAILURES = 60;

const seed = Number(args.seed);
const minutes = Number(args.minutes);
const timeoutMs = Number(args["timeout-seconds"]) * 1000;
const rssLimitMb = Number(args["rss-limit-mb"]);
const concurrency = Math.max(1, Number(args.concurrency));
const maxCases = Number(args.cases);
for (const [name, value] of Object.entries({ seed, minutes, timeoutMs, rssLimitMb, concurrency, maxCases })) {
  if (!Number.isFinite(value)) {
    console.error(`--${name} is not a number`);
    process.exit(2);
  }
}
if (args.url && args.split) {
  console.error("--split starts its own service: give it or --url, not both");
  process.exit(2);
}
if (args.url && !/^https?:\/\/(127\.0\.0\.1|localhost)(:\d+)?\/?$/.test(args.url)) {
  console.error("--url must be a loopback address (http://127.0.0.1:PORT): the fuzzer sends traffic to this machine only");
  process.exit(2);
}

// ---------------------------------------------------------------- the service.

/** The processes this script started (none with --url). */
let processes: ChildProcess[] = [];
let split: SplitService | undefined;
let dataDir: string | undefined;

function freePort(): number {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = probe.port!;
  probe.stop(true);
  return port;
}

const killService = (signal: NodeJS.Signals) => processes.forEach((child) => signalGroup(child, signal));
async function stopService(): Promise<void> {
  if (split) await split.stop();
  else for (const child of processes) await stopGroup(child);
}
process.on("exit", () => killService("SIGKILL"));
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));

interface StartedService {
  url: string;
  token: string;
  /** The web role's process, and the others beside it (their memory counts in the total). */
  pid: number;
  otherPids: number[];
}

/** `bun index.ts` (every role) with a fresh data folder. */
async function startEmbedded(): Promise<StartedService> {
  dataDir = mkdtempSync(join(tmpdir(), "facefleet-fuzz-"));
  const port = freePort();
  const token = crypto.randomUUID();
  const service = startGroup(["bun", "index.ts"], { FACEFLEET_HOST: "127.0.0.1", FACEFLEET_PORT: String(port), FACEFLEET_DATA_DIR: join(dataDir, "data"), FACEFLEET_API_TOKEN: token }, openSync(join(dataDir, "service.log"), "w"));
  processes = [service];
  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(url, processes, ` (log: ${dataDir}/service.log)`);
  return { url, token, pid: service.pid!, otherPids: [] };
}

/** The web role (with the controller) and one app process on the emulated region. */
async function startSplit(): Promise<StartedService> {
  dataDir = mkdtempSync(join(tmpdir(), "facefleet-fuzz-"));
  const port = freePort();
  const token = crypto.randomUUID();
  const settings = { FACEFLEET_HOST: "127.0.0.1", FACEFLEET_PORT: String(port), FACEFLEET_API_TOKEN: token, FACEFLEET_MAX_APP_INSTANCES: "0" };
  const output = { web: openSync(join(dataDir, "web.log"), "w"), app: openSync(join(dataDir, "app.log"), "w") };
  split = await startSplitService({ settings, prefix: `fuzz${process.pid}`, webRoles: "web+controller", output });
  processes = [split.web, split.app];
  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(url, processes, ` (logs: ${dataDir}/web.log, app.log)`);
  return { url, token, pid: split.web.pid!, otherPids: [split.app.pid!] };
}

/** The app process's unhealthy marks in the split mode, from its log (it writes no job report: see the top). */
const appLogUnhealthyMarks = () => (split && dataDir ? readFileSync(join(dataDir, "app.log"), "utf8").split("\n").filter((line) => line.includes('"instance_unhealthy"')).length : 0);

async function enrollSampleSet(url: string, token: string): Promise<string[]> {
  const people = readdirSync(PEOPLE_DIR).sort();
  for (const person of people) {
    for (const file of readdirSync(join(PEOPLE_DIR, person)).sort()) {
      const form = new FormData();
      form.append("image", new File([await Bun.file(join(PEOPLE_DIR, person, file)).bytes()], file, { type: "image/jpeg" }));
      const response = await fetch(`${url}/v1/subjects/${person}/faces?face=largest`, { method: "POST", body: form, headers: { authorization: `Bearer ${token}` } });
      if (!response.ok) throw new Error(`enrolling ${person}/${file}: ${response.status} ${await response.text()}`);
    }
  }
  return people;
}

/** Every route that takes a file in a multipart body, as the OpenAPI document describes it. */
async function uploadRoutes(url: string): Promise<UploadRoute[]> {
  interface Operation {
    parameters?: { name: string; in: string }[];
    requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> };
  }
  const document = (await (await fetch(`${url}/openapi/json`)).json()) as { paths: Record<string, Record<string, Operation>> };
  const routes: UploadRoute[] = [];
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const properties = operation.requestBody?.content?.["multipart/form-data"]?.schema?.properties ?? {};
      const fileFields = Object.entries(properties).filter(([, schema]) => JSON.stringify(schema).includes('"binary"'));
      if (fileFields.length === 0) continue;
      routes.push({
        method: method.toUpperCase(),
        path,
        fileFields: fileFields.map(([name]) => name),
        repeatable: fileFields.some(([, schema]) => JSON.stringify(schema).includes('"array"') || JSON.stringify(schema).includes("maxItems")),
        queryParameters: (operation.parameters ?? []).filter((parameter) => parameter.in === "query").map((parameter) => parameter.name),
      });
    }
  }
  return routes;
}

// ---------------------------------------------------------------- the run.

const started = args.url === undefined;
const { url, token, pid, otherPids } = started
  ? await (args.split ? startSplit() : startEmbedded())
  : { url: args.url!.replace(/\/$/, ""), token: args.token ?? process.env.FACEFLEET_API_TOKEN ?? "", pid: args.pid ? Number(args.pid) : undefined, otherPids: [] };
let stoppedEarly: string | undefined;
const memory = pid
  ? new MemoryWatch(pid, otherPids, SAMPLE_MS, rssLimitMb, (totalMb) => {
      stoppedEarly = `the service's memory passed ${rssLimitMb} MB (${Math.round(totalMb)} MB)`;
      console.error(`STOPPED EARLY: ${stoppedEarly}`);
      // Protect the machine: a bomb that got through could take all of it.
      killService("SIGKILL");
    })
  : undefined;

const routes = await uploadRoutes(url);
const subjects = started ? await enrollSampleSet(url, token) : ((await (await fetch(`${url}/v1/subjects?size=100`, { headers: { authorization: `Bearer ${token}` } })).json()) as { subjects?: { name: string }[] }).subjects?.map((subject) => subject.name) ?? [];
const baseline: HealthCounters = await healthCounters(url);
let lastCounters = baseline;
const port = Number(new URL(url).port || 80);
const target: FuzzTarget = {
  port,
  token,
  routes,
  subjects,
  seeds: await makeSeeds(SEED_PHOTOS),
  limits: { maxFileBytes: Math.floor(Number(args["max-file-mb"]) * 1024 * 1024), bombBytes: Number(args["bomb-mb"]) * 1_000_000, maxScans: Number(args["max-scans"]) },
  timeoutMs,
  // The started service's, from the same environment; a service behind --url is assumed to have the same.
  uploadSlots: loadConfig(process.env).concurrentUploads,
};
console.error(`fuzzing ${url} (seed ${seed}, ${minutes} min, ${concurrency} at once), routes: ${routes.map((route) => `${route.method} ${route.path}`).join(", ")}; ${subjects.length} subjects${dataDir ? `; service logs in ${dataDir}` : ""}`);

const tally = { cases: 0, answered_2xx: 0, answered_4xx: 0, answered_5xx: 0, timeouts: 0, other: 0, dropped: 0, closedOnMalformed: 0, refusedByHttpParser: 0, pastGuard: 0, looseNumbersTaken: 0, slowestBesideTricklesMs: 0 };
interface KindTally {
  cases: number;
  statuses: Record<string, number>;
}
const byKind = new Map<string, KindTally>();
const kindTally = (kind: string) => byKind.get(kind) ?? byKind.set(kind, { cases: 0, statuses: {} }).get(kind)!;
let printed = 0;

/**
 * An anonymous answer under /v1 that did not come from the guard (401), the router (404 not_found), the refusal of a
 * malformed or non-canonical request before routing (400 bad_request, roles/web/request-target.ts) or the HTTP parser.
 */
function pastGuard(outcome: CaseOutcome): boolean {
  if (outcome.status === undefined || outcome.status === 401) return false;
  if (outcome.status >= 200 && outcome.status < 300) return true;
  const code = /"error":"([a-z_]+)"/.exec(outcome.head)?.[1];
  return code !== undefined && code !== "not_found" && !(outcome.status === 400 && code === "bad_request");
}

/**
 * Bun's HTTP parser refuses a request line it cannot parse (a raw space or NUL in the target or the method) with a bare
 * 505 or 400 before any of the service's code runs: no `x-request-id`, no body. Counted apart from the service's answers.
 */
function refusedByHttpParser(outcome: CaseOutcome): boolean {
  const [head = "", body = ""] = outcome.head.split("\r\n\r\n");
  return outcome.status !== undefined && outcome.status >= 400 && !/^x-request-id:/im.test(head) && body.length === 0;
}

function record(fuzz: FuzzCase, outcome: CaseOutcome): void {
  const kind = kindTally(fuzz.kind);
  const label = outcome.status === undefined ? (outcome.timedOut ? "timeout" : "closed") : String(outcome.status);
  kind.statuses[label] = (kind.statuses[label] ?? 0) + 1;
  let failure: string | undefined;
  if (outcome.timedOut) {
    tally.timeouts++;
    failure = `TIMEOUT (no answer in ${timeoutMs / 1000} s)`;
  } else if (outcome.status === undefined && outcome.wellFormed) {
    tally.dropped++;
    failure = "CLOSED WITHOUT AN ANSWER";
  } else if (outcome.status === undefined) tally.closedOnMalformed++;
  else if (refusedByHttpParser(outcome)) tally.refusedByHttpParser++;
  else if (outcome.status >= 500) {
    tally.answered_5xx++;
    failure = `${outcome.status}`;
  } else if (outcome.status >= 400) tally.answered_4xx++;
  else if (outcome.status >= 200 && outcome.status < 300) tally.answered_2xx++;
  else tally.other++;
  if (outcome.besideTrickles) tally.slowestBesideTricklesMs = Math.max(tally.slowestBesideTricklesMs, outcome.ms);
  if (outcome.protectedAnonymous && pastGuard(outcome)) {
    tally.pastGuard++;
    failure = `${outcome.status} WITHOUT A TOKEN under /v1: past the bearer guard`;
  }
  if (outcome.looseNumber && !(outcome.status === 400 && /"error":"invalid_parameter"/.test(outcome.head))) {
    tally.looseNumbersTaken++;
    failure ??= `${outcome.status ?? "no answer"} TO A LOOSE NUMBER: not 400 invalid_parameter`;
  }
  if (failure && printed++ < PRINTED_FAILURES) {
    const body = outcome.head.split("\r\n\r\n").slice(1).join(" ").replace(/\s+/g, " ").slice(0, 160);
    console.error(`case ${fuzz.index} [${fuzz.kind}] ${fuzz.description}: ${failure} after ${outcome.ms} ms ${body}`);
  }
}

const deadline = Date.now() + minutes * 60_000;
const single = args.case === undefined ? undefined : Number(args.case);
let next = single ?? 0;
const last = single ?? maxCases - 1;
const serviceGone = () => processes.find((child) => child.exitCode !== null || child.signalCode !== null);
async function worker(): Promise<void> {
  while (next <= last && (single !== undefined || Date.now() < deadline) && !stoppedEarly && !serviceGone()) {
    const fuzz = fuzzCase(seed, next++, target);
    const outcomes = await fuzz.run();
    tally.cases++;
    kindTally(fuzz.kind).cases++;
    for (const outcome of outcomes) record(fuzz, outcome);
  }
}
const counterPoll = setInterval(() => {
  healthCounters(url).then(
    (counters) => (lastCounters = counters),
    () => {},
  );
}, 5000);
const fuzzingSince = Date.now();
await Promise.all(Array.from({ length: single === undefined ? concurrency : 1 }, worker));
const gone = serviceGone();
if (gone && !stoppedEarly) {
  stoppedEarly = `the service process '${gone.spawnargs.slice(1).join(" ")}' exited (code ${gone.exitCode}, signal ${gone.signalCode}); its logs: ${dataDir}`;
  console.error(`STOPPED EARLY: ${stoppedEarly}`);
}
if (!stoppedEarly) await Bun.sleep(SETTLE_MS);
clearInterval(counterPoll);
try {
  lastCounters = await healthCounters(url);
} catch (error) {
  console.error(`could not read ${url}/metrics at the end (${(error as Error).message}): the counters are from the last reading`);
}
memory?.sample();
memory?.stop();
await stopService();
const appUnhealthyMarks = appLogUnhealthyMarks();
if (dataDir && !stoppedEarly) rmSync(dataDir, { recursive: true, force: true });

console.error(`${tally.cases} cases in ${Math.round((Date.now() - fuzzingSince) / 1000)} s; ${printed > PRINTED_FAILURES ? `${printed - PRINTED_FAILURES} more failures not printed` : ""}`);
const findings = {
  stopped_early: stoppedEarly ?? null,
  anonymous_past_guard: tally.pastGuard,
  loose_numbers_taken: tally.looseNumbersTaken,
  dropped: tally.dropped,
  closed_on_malformed: tally.closedOnMalformed,
  refused_by_http_parser: tally.refusedByHttpParser,
  slowest_beside_trickles_ms: tally.slowestBesideTricklesMs,
  other_statuses: tally.other,
  by_kind: Object.fromEntries([...byKind].sort(([a], [b]) => a.localeCompare(b))),
};
console.log(`findings ${JSON.stringify(findings)}`);
console.log(
  JSON.stringify({
    cases: tally.cases,
    answered_2xx: tally.answered_2xx,
    answered_4xx: tally.answered_4xx,
    answered_5xx: tally.answered_5xx,
    timeouts: tally.timeouts,
    unhealthy_marks: lastCounters.unhealthyMarks - baseline.unhealthyMarks + appUnhealthyMarks,
    instances_replaced: lastCounters.instancesReplaced - baseline.instancesReplaced,
    peak_web_rss_mb: Math.round(memory?.peaks.webMb ?? 0),
    peak_total_rss_mb: Math.round(memory?.peaks.totalMb ?? 0),
  }),
);
process.exit(0);
