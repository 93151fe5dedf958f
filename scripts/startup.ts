/**
 * Start-up figures: from a process's start to its first answer.
 *   bun run scripts/startup.ts [--runs 5] [--baseline CHECKOUT] [--region] [--port P]
 * Embedded: `NODE_ENV=production bun index.ts` (every role on the local stand-ins), a fresh data directory each run,
 * asked `POST /` until it answers; with nobody enrolled the first answer is an app instance's 409. From its log: when
 * it had resolved its roles (the instance-metadata probe) and started them (the inference workers' models loaded).
 * With --baseline, another checkout's service (its node_modules and model/onnx in place) takes turns with this one.
 * --region: also an app instance of the emulated region (scripts/sim-deployment.ts, warm pool, start delay 0), started
 * by one job: the job's answer after it was sent, and from the instance's log its process start to roles resolved,
 * roles started and its first job done. The region runs the committed code (the image is baked from git HEAD).
 * Last line: one JSON object.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { APP_ROLE_TAG_VALUE, ROLE_TAG } from "../roles/deployment.ts";
import { startSimDeployment } from "./sim-deployment.ts";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    baseline: { type: "string" },
    region: { type: "boolean", default: false },
    // Below the usual ephemeral range (32768 and up), where the region's own servers get their ports.
    port: { type: "string", default: String(20000 + Math.floor(Math.random() * 12000)) },
  },
});
const runs = Number(args.runs);
const port = Number(args.port);
const image = new File([await Bun.file(join(import.meta.dir, "../tests/fixtures/queries/query_1.jpg")).bytes()], "query_1.jpg", { type: "image/jpeg" });

/** Asks the classic route once; the HTTP status, or undefined while nothing answers (or the web role says 503). */
async function ask(url: string): Promise<number | undefined> {
  const form = new FormData();
  form.append("inputFile", image);
  try {
    const response = await fetch(`${url}/`, { method: "POST", body: form });
    await response.arrayBuffer();
    return response.status === 503 ? undefined : response.status;
  } catch {
    return undefined;
  }
}

interface LogLine {
  time: string;
  event: string;
  sinceStartMs?: number;
  cpuMs?: number;
}
const logLines = (text: string): LogLine[] =>
  text.split("\n").flatMap((line) => {
    try {
      return line.startsWith("{") ? [JSON.parse(line) as LogLine] : [];
    } catch {
      return [];
    }
  });

/** From the process's log: when it had resolved its roles and started them, and the CPU it had used by then (all threads). */
interface Phases {
  resolvedMs?: number;
  startedMs?: number;
  startedCpuMs?: number;
}
const phases = (lines: LogLine[]): Phases => {
  const started = lines.find((line) => line.event === "roles_started");
  return { resolvedMs: lines.find((line) => line.event === "roles_resolved")?.sinceStartMs, startedMs: started?.sinceStartMs, startedCpuMs: started?.cpuMs };
};

/** One embedded start of the checkout: process start (as spawned) to the first answer, and the phases its log gives. */
async function embeddedStart(checkout: string, servicePort: number): Promise<Phases & { firstAnswerMs: number; cpuAtAnswerMs?: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), "startup-"));
  const url = `http://127.0.0.1:${servicePort}`;
  const env = { ...process.env, NODE_ENV: "production", FACEFLEET_PORT: String(servicePort), FACEFLEET_HOST: "127.0.0.1", FACEFLEET_DATA_DIR: dataDir };
  const launched = performance.now();
  const child = Bun.spawn(["bun", join(checkout, "index.ts")], { env, stdout: "pipe", stderr: "inherit" });
  try {
    let status: number | undefined;
    while ((status = await ask(url)) === undefined) {
      if (child.exitCode !== null) throw new Error(`${checkout}: bun index.ts exited (${child.exitCode}) before answering`);
      if (performance.now() - launched > 60_000) throw new Error(`${checkout}: no answer within 60 s`);
      await Bun.sleep(10);
    }
    const firstAnswerMs = performance.now() - launched;
    const cpuAtAnswerMs = cpuMsOf(child.pid);
    if (status !== 409) throw new Error(`${checkout}: the first answer was HTTP ${status}, not 409 (nobody enrolled)`);
    child.kill("SIGTERM");
    const log = await new Response(child.stdout).text();
    return { firstAnswerMs, cpuAtAnswerMs, ...phases(logLines(log)) };
  } finally {
    child.kill("SIGKILL");
    await child.exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const summary = (values: (number | undefined)[]) => {
  const known = values.filter((value): value is number => value !== undefined);
  return known.length === 0 ? undefined : { median: Math.round(median(known)), all: known.map(Math.round) };
};
/** CPU milliseconds a process has used so far, all its threads (from /proc): unlike its wall time, load from others hardly bends it. */
const cpuMsOf = (pid: number): number | undefined => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
};
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

const checkouts = [{ label: "this", dir: resolve(import.meta.dir, "..") }, ...(args.baseline ? [{ label: "baseline", dir: resolve(args.baseline) }] : [])];
const embedded: Record<string, Awaited<ReturnType<typeof embeddedStart>>[]> = Object.fromEntries(checkouts.map(({ label }) => [label, []]));
console.error(`embedded start-up, ${runs} run(s) each, taking turns (load ${load()})`);
for (let run = 0; run < runs; run++) {
  for (const { label, dir } of run % 2 ? [...checkouts].reverse() : checkouts) {
    const result = await embeddedStart(dir, port);
    embedded[label]!.push(result);
    console.log(`${label} run ${run + 1}: first answer ${Math.round(result.firstAnswerMs)} ms, ${result.cpuAtAnswerMs ?? "?"} ms of CPU (roles resolved at ${result.resolvedMs ?? "?"} ms, started at ${result.startedMs ?? "?"} ms having used ${result.startedCpuMs ?? "?"} ms of CPU)`);
  }
}
const embeddedSummary = Object.fromEntries(
  Object.entries(embedded).map(([label, results]) => [
    label,
    { first_answer_ms: summary(results.map((r) => r.firstAnswerMs)), cpu_at_first_answer_ms: summary(results.map((r) => r.cpuAtAnswerMs)), roles_resolved_ms: summary(results.map((r) => r.resolvedMs)), roles_started_ms: summary(results.map((r) => r.startedMs)), cpu_at_roles_started_ms: summary(results.map((r) => r.startedCpuMs)) },
  ]),
);
for (const [label, figures] of Object.entries(embeddedSummary)) {
  console.log(`${label}: embedded first answer, median ${figures.first_answer_ms?.median} ms, ${figures.cpu_at_first_answer_ms?.median ?? "?"} ms of CPU; roles resolved at ${figures.roles_resolved_ms?.median ?? "?"} ms, started at ${figures.roles_started_ms?.median ?? "?"} ms (load ${load()})`);
}

/** One app instance of the emulated region, started by one job, `runs` times (the pool scales back in between). */
async function regionStarts(): Promise<Record<string, unknown>> {
  console.error("region: bootstrap, bake and launch (a minute or two)");
  const deployment = await startSimDeployment({ bootDelayMs: 0, startDelayMs: 0, pool: "warm", port: port + 1 });
  const { cloud, region, webUrl } = deployment;
  const results: (Phases & { answerMs: number; cpuAtAnswerMs?: number; firstJobMs?: number })[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      // Wait for a fleet at rest: every app instance stopped.
      for (;;) {
        const instances = await cloud.fleet.list();
        if (instances.length > 0 && instances.every((instance) => instance.state === "stopped")) break;
        await Bun.sleep(100);
      }
      const sent = performance.now();
      const sentAt = Date.now();
      const status = await ask(webUrl);
      const answerMs = performance.now() - sent;
      if (status !== 409) throw new Error(`region: the answer was HTTP ${status ?? "none"}, not 409 (nobody enrolled)`);
      const [instance] = region.ec2.instances().filter((candidate) => candidate.pid !== undefined && candidate.tags[ROLE_TAG] === APP_ROLE_TAG_VALUE);
      if (!instance) throw new Error("region: no app instance was started for the job");
      const cpuAtAnswerMs = cpuMsOf(instance.pid!);
      // The instance's log holds every boot of it: this boot's lines are the ones after the job was sent. It logs the job
      // done just after it replied.
      const thisBoot = () => logLines(readFileSync(join(region.logDir, `${instance.id}.log`), "utf8")).filter((line) => Date.parse(line.time) >= sentAt);
      let lines = thisBoot();
      for (let waited = 0; waited < 2_000 && !lines.some((line) => line.event === "job_done"); waited += 50) {
        await Bun.sleep(50);
        lines = thisBoot();
      }
      const resolved = lines.find((line) => line.event === "roles_resolved");
      const processStart = resolved?.sinceStartMs === undefined ? undefined : Date.parse(resolved.time) - resolved.sinceStartMs;
      const firstJob = lines.find((line) => line.event === "job_done");
      const result = { answerMs, cpuAtAnswerMs, ...phases(lines), firstJobMs: processStart === undefined || !firstJob ? undefined : Date.parse(firstJob.time) - processStart };
      results.push(result);
      console.log(`region run ${run + 1}: answer ${Math.round(answerMs)} ms after the job was sent; the instance's process: ${cpuAtAnswerMs ?? "?"} ms of CPU by then, roles resolved at ${result.resolvedMs ?? "?"} ms, started at ${result.startedMs ?? "?"} ms (${result.startedCpuMs ?? "?"} ms of CPU), first job done at ${result.firstJobMs ?? "?"} ms`);
    }
  } finally {
    await deployment.infra("teardown", "--yes").catch((error) => console.error(String(error)));
    await region.stop();
  }
  const figures = {
    answer_ms: summary(results.map((r) => r.answerMs)),
    cpu_at_answer_ms: summary(results.map((r) => r.cpuAtAnswerMs)),
    roles_resolved_ms: summary(results.map((r) => r.resolvedMs)),
    roles_started_ms: summary(results.map((r) => r.startedMs)),
    cpu_at_roles_started_ms: summary(results.map((r) => r.startedCpuMs)),
    first_job_ms: summary(results.map((r) => r.firstJobMs)),
  };
  console.log(`region: app instance started by a job, median answer ${figures.answer_ms?.median} ms after sending, its process had used ${figures.cpu_at_answer_ms?.median ?? "?"} ms of CPU; first job done at ${figures.first_job_ms?.median ?? "?"} ms (load ${load()})`);
  return figures;
}

const regionSummary = args.region ? await regionStarts() : undefined;
console.log(JSON.stringify({ runs, embedded: embeddedSummary, ...(regionSummary && { region: regionSummary }) }));
process.exit(0);
