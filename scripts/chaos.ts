/**
 * A chaos run against the deployment in the emulated region (scripts/sim-deployment.ts): enrolls people from an
 * LFW-layout folder, then sends a sustained load of distinct photos of them while it SIGKILLs app instances, freezes
 * others (SIGSTOP, SIGCONT later), breaks one instance's S3 path (its input-bucket reads answer 500) and injects
 * throttling and 5xx answers into S3, SQS and EC2. Its last line is one JSON object of figures.
 *   bun run scripts/chaos.ts --people DIR [--minutes 10] [--rate 4] [--concurrency 16] [--kill-every 30]
 *     [--freeze-every 40] [--freeze-for 35] [--fault-rate 0.02] [--pool warm|cold] [--enroll 40] [--max-instances 15]
 *     [--port 8000]
 * Each request's file name carries its sequence number and the expected person (`q17-Aaron_Peirsol.jpg`), so an
 * answer meant for another request shows as `wrong_caller`. Each photo gets a unique JPEG comment, so no two requests
 * carry the same bytes (the app's content-hash cache never answers one).
 * Figures: `answered` 200 answers; `correct` of those, the expected person; `failed` other HTTP answers; `lost`
 * requests that got no HTTP answer at all plus jobs still in the request queue after the run; `duplicates` replies
 * the web role dropped as answered already; `dead_lettered` the messages set aside for good: what the dead-letter
 * queue holds once the controller has drained it (it redrives a job whose holders died, and keeps only a job past its
 * last redrive, answered job_failed, or a message that is not a job; roles/controller/dead-letters.ts); `max_running`
 * the most app instances pending or running at once; `peak_web_rss_mb` the web instance's resident memory.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { APP_ROLE_TAG_VALUE, ROLE_TAG } from "../roles/deployment.ts";
import type { FaultKind } from "../infra/sim/faults.ts";
import { instanceAccessKey } from "../infra/sim/iam/access.ts";
import { startRequestTap, type RequestTap, type TappedRequest } from "../infra/sim/request-tap.ts";
import { SIM_PREFIX, startSimDeployment } from "./sim-deployment.ts";

const { values: args } = parseArgs({
  options: {
    people: { type: "string" },
    minutes: { type: "string", default: "10" },
    rate: { type: "string", default: "4" },
    concurrency: { type: "string", default: "16" },
    "kill-every": { type: "string", default: "30" },
    "freeze-every": { type: "string", default: "40" },
    "freeze-for": { type: "string", default: "35" },
    "fault-rate": { type: "string", default: "0.02" },
    pool: { type: "string", default: "warm" },
    enroll: { type: "string", default: "40" },
    "max-instances": { type: "string", default: "15" },
    port: { type: "string", default: "8000" },
  },
});
if (!args.people) throw new Error("--people DIR is required (LFW layout: DIR/<Name>/<Name>_0001.jpg)");
if (args.pool !== "warm" && args.pool !== "cold") throw new Error("--pool is warm or cold");
const durationMs = Number(args.minutes) * 60_000;
const rate = Number(args.rate);
const concurrency = Number(args.concurrency);
const killEveryMs = Number(args["kill-every"]) * 1000;
const freezeEveryMs = Number(args["freeze-every"]) * 1000;
const freezeForMs = Number(args["freeze-for"]) * 1000;
const faultRate = Number(args["fault-rate"]);
const API_TOKEN = process.env.FACEFLEET_API_TOKEN ?? crypto.randomUUID();
process.env.FACEFLEET_API_TOKEN = API_TOKEN;

interface Person {
  name: string;
  enrolled: string;
  probes: string[];
}

/** The first `count` people (by name) with at least two photos: the first is enrolled, the others are asked about. */
function peopleFrom(dir: string, count: number): Person[] {
  const people: Person[] = [];
  for (const name of readdirSync(dir).sort()) {
    const photos = readdirSync(join(dir, name)).filter((file) => file.endsWith(".jpg")).sort();
    if (photos.length >= 2) people.push({ name, enrolled: join(dir, name, photos[0]!), probes: photos.slice(1).map((file) => join(dir, name, file)) });
    if (people.length === count) break;
  }
  if (people.length === 0) throw new Error(`no person with two photos in ${dir}`);
  return people;
}

/** The JPEG with a comment segment (COM) after its start marker: the same picture, other bytes. */
function withComment(jpeg: Uint8Array, comment: string): Uint8Array {
  const text = new TextEncoder().encode(comment);
  const length = text.length + 2;
  return new Uint8Array([0xff, 0xd8, 0xff, 0xfe, length >> 8, length & 0xff, ...text, ...jpeg.subarray(2)]);
}

// One instance's S3 path breaks: every read of the input bucket it makes answers 500, once it has made its first.
const instanceOfKey = new Map<string, string>();
let broken: string | undefined;
let tap: RequestTap | undefined;
const IN_BUCKET_PATH = `/${SIM_PREFIX}-in-bucket/`;
const breakOne = ({ accessKeyId, method, path }: TappedRequest): Response | undefined => {
  const instanceId = instanceOfKey.get(accessKeyId ?? "");
  if (!loadStarted || !instanceId || method !== "GET" || !path.startsWith(IN_BUCKET_PATH)) return undefined;
  broken ??= instanceId;
  if (instanceId !== broken) return undefined;
  return new Response(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>chaos</Message></Error>`, { status: 500, headers: { "content-type": "application/xml" } });
};
let loadStarted = false;

const deployment = await startSimDeployment({
  bootDelayMs: 0,
  startDelayMs: 0,
  pool: args.pool,
  port: Number(args.port),
  settings: { FACEFLEET_MAX_APP_INSTANCES: args["max-instances"]! },
  instanceEnv(instance, tags, region) {
    if (tags[ROLE_TAG] !== APP_ROLE_TAG_VALUE) return undefined;
    instanceOfKey.set(instanceAccessKey(instance.id), instance.id);
    tap ??= startRequestTap(region.s3sqs.handle, breakOne);
    return { AWS_ENDPOINT_URL_S3: tap.endpoint };
  },
});
const { region, config, names, cloud, webUrl } = deployment;
const auth = { authorization: `Bearer ${API_TOKEN}` };
const log = (message: string) => console.error(`${new Date().toISOString().slice(11, 19)} ${message}`);

const appInstances = () => region.ec2.instances().filter((instance) => instance.tags[ROLE_TAG] === APP_ROLE_TAG_VALUE);
const webInstance = () => region.ec2.instances().find((instance) => instance.tags[ROLE_TAG]?.includes("web") && instance.state === "running");

const people = peopleFrom(args.people, Number(args.enroll));
log(`enrolling ${people.length} people from ${args.people}`);
for (const person of people) {
  const form = new FormData();
  form.append("image", new File([readFileSync(person.enrolled)], "enroll.jpg", { type: "image/jpeg" }));
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(`${webUrl}/v1/subjects/${encodeURIComponent(person.name)}/faces?face=largest`, { method: "POST", body: form, headers: auth });
    if (response.status === 201) break;
    if (attempt === 3) throw new Error(`enrolling ${person.name}: ${response.status} ${await response.text()}`);
  }
}

const figures = {
  sent: 0,
  answered: 0,
  correct: 0,
  wrong_caller: 0,
  failed: 0,
  lost: 0,
  duplicates: 0,
  dead_lettered: 0,
  kills: 0,
  freezes: 0,
  max_running: 0,
  exceeded_max: false,
  peak_web_rss_mb: 0,
};
const failures = new Map<string, number>();
const probes = people.flatMap((person) => person.probes.map((file) => ({ person: person.name, file })));
const frozen = new Set<string>();

async function ask(seq: number): Promise<void> {
  const probe = probes[seq % probes.length]!;
  const name = `q${seq}-${probe.person}`;
  const form = new FormData();
  form.append("inputFile", new File([withComment(readFileSync(probe.file), `chaos ${seq}`)], `${name}.jpg`, { type: "image/jpeg" }));
  let response: Response;
  try {
    response = await fetch(`${webUrl}/`, { method: "POST", body: form, signal: AbortSignal.timeout(config.requestTimeoutMs + 30_000) });
  } catch (error) {
    figures.lost++;
    const reason = `no answer: ${(error as Error).name}: ${(error as Error).message}`;
    failures.set(reason, (failures.get(reason) ?? 0) + 1);
    return;
  }
  const body = await response.text();
  if (response.status !== 200) {
    figures.failed++;
    const code = `${response.status} ${body.match(/"error":"([^"]+)"/)?.[1] ?? ""}`;
    failures.set(code, (failures.get(code) ?? 0) + 1);
    return;
  }
  figures.answered++;
  const [answeredName, person] = body.split(":");
  if (answeredName !== name) figures.wrong_caller++;
  else if (person === probe.person) figures.correct++;
}

const pick = <T>(items: T[]): T | undefined => items[Math.floor(Math.random() * items.length)];
const runningApps = () => appInstances().filter((instance) => instance.state === "running" && instance.pid !== undefined && !frozen.has(instance.id));
// The broken instance is left for the controller to replace.
const victims = () => runningApps().filter((instance) => instance.id !== broken);

function kill(): void {
  const victim = pick(victims());
  if (!victim || !region.ec2.killProcess(victim.id, "SIGKILL")) return;
  figures.kills++;
  log(`SIGKILL ${victim.id}`);
}

function freeze(): void {
  const victim = pick(victims());
  if (!victim || !region.ec2.killProcess(victim.id, "SIGSTOP")) return;
  figures.freezes++;
  frozen.add(victim.id);
  log(`SIGSTOP ${victim.id} for ${freezeForMs / 1000} s`);
  setTimeout(() => thaw(victim.id), freezeForMs);
}

function thaw(instanceId: string): void {
  if (!frozen.delete(instanceId)) return;
  region.ec2.killProcess(instanceId, "SIGCONT");
  log(`SIGCONT ${instanceId}`);
}

const FAULT_KINDS: FaultKind[] = ["throttle", "server-error"];
function injectFaults(): void {
  if (faultRate <= 0) return;
  for (const service of ["s3", "sqs", "ec2"] as const) region.faults[service].set({ kind: pick(FAULT_KINDS)!, fraction: faultRate });
}

function sample(): void {
  const active = appInstances().filter((instance) => instance.state === "pending" || instance.state === "running").length;
  figures.max_running = Math.max(figures.max_running, active);
  const pid = webInstance()?.pid;
  if (pid === undefined) return;
  try {
    const kb = Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
    figures.peak_web_rss_mb = Math.max(figures.peak_web_rss_mb, Math.round(kb / 1024));
  } catch {
    // Not Linux, or the process just ended.
  }
}

log(`load: ${rate}/s for ${durationMs / 60_000} min, at most ${concurrency} in flight; SIGKILL every ${killEveryMs / 1000} s, SIGSTOP every ${freezeEveryMs / 1000} s, faults ${faultRate}`);
loadStarted = true;
const timers = [
  setInterval(sample, 500),
  setInterval(kill, killEveryMs),
  setInterval(freeze, freezeEveryMs),
  setInterval(injectFaults, 15_000),
  setInterval(() => log(`sent ${figures.sent}, answered ${figures.answered}, failed ${figures.failed}, running ${runningApps().length}, frozen ${frozen.size}${broken ? `, broken ${broken}` : ""}`), 10_000),
];
injectFaults();
const inFlight = new Set<Promise<void>>();
const started = performance.now();
for (let seq = 0; performance.now() - started < durationMs; seq++) {
  const due = started + (seq * 1000) / rate;
  if (due > performance.now()) await Bun.sleep(due - performance.now());
  while (inFlight.size >= concurrency) await Promise.race(inFlight);
  figures.sent++;
  const request = ask(seq).finally(() => inFlight.delete(request));
  inFlight.add(request);
}
for (const timer of timers.slice(1)) clearInterval(timer);
for (const service of ["s3", "sqs", "ec2"] as const) region.faults[service].clear();
for (const instanceId of [...frozen]) thaw(instanceId);
log(`load over; waiting for ${inFlight.size} request(s) in flight`);
await Promise.all(inFlight);

// Whatever is still queued now was given up by its caller: it counts as lost.
const requestQueue = cloud.queues.queue(names.reqQueue);
const deadLetterQueue = cloud.queues.queue(names.deadLetterQueue);
const depthOf = async (queue: typeof requestQueue) => {
  const depth = await queue.depth();
  return depth.visible + depth.inFlight;
};
// Drained: nothing queued and nothing in the dead-letter queue the controller has not looked at (what it keeps, it
// hides), twice in a row, so a redrive under way (taken from the one queue, not yet in the other) is not missed.
const drained = async () => (await depthOf(requestQueue)) === 0 && (await deadLetterQueue.depth()).visible === 0;
for (let waited = 0, settled = 0; waited < 60_000 && settled < 2; waited += 1000) {
  settled = (await drained()) ? settled + 1 : 0;
  if (settled < 2) await Bun.sleep(1000);
}
figures.lost += await depthOf(requestQueue);
figures.dead_lettered = await depthOf(deadLetterQueue);
clearInterval(timers[0]);
const webLog = webInstance()?.logPath;
const webLines = webLog ? readFileSync(webLog, "utf8").split("\n") : [];
figures.duplicates = webLines.filter((line) => line.includes('"reply_dropped"') && line.includes('"duplicate"')).length;
const replacements = webLines.filter((line) => line.includes('"replace_unhealthy"') && broken && line.includes(broken)).length;
figures.exceeded_max = figures.max_running > config.maxAppInstances;
if (failures.size > 0) log(`failures: ${JSON.stringify(Object.fromEntries(failures))}`);
const redriven = webLines.filter((line) => line.includes('"job_redriven"')).length;
log(`broken instance: ${broken ?? "none took a job"}, replaced by the controller ${replacements} time(s); dead-lettered jobs redriven ${redriven} time(s); instance logs in ${region.logDir}`);
await region.stop();
await tap?.stop();
console.log(JSON.stringify(figures));
process.exit(0);
