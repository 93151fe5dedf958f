/**
 * The embedded service's own overhead: answers per second of `bun index.ts` (every role in one process) to the course's
 * client protocol (`POST /`, field `inputFile`) beside the bare inference pool's images per second on the same images,
 * in one run, taking turns, so load from anything else on the machine falls on both alike. Also the service's start-up:
 * from its process start to its first answer.
 *   bun run scripts/bench-overhead.ts --dir DIR [--images 1000] [--rounds 3] [--concurrency 100] [--port P] [--baseline CHECKOUT] [--cpu-prof DIR]
 * DIR is an LFW-layout folder: the first --images photos (by path) are sent, each once a round, so with distinct photos
 * the analysis cache cannot answer any of them; the service runs with the cache off besides. Each side's CPU is read
 * from /proc thread by thread, in four groups: the main thread (HTTP, storage calls, queues, logs), Bun's thread pool
 * (file I/O, and the decoder's native work), the inference workers (with libvips' threads) and the rest (JIT, garbage
 * collector, allocator). On a machine others load,
 * the answers/s ratio leans toward whichever side has more runnable threads; CPU per answer beside the pool's CPU per
 * image (answers per CPU second over images per CPU second) does not. With --baseline, the service of
 * another checkout (the commit before a change, say) takes its turn in every round too. Last line: one JSON object.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { InferencePool } from "../model/pool.ts";
import { loadConfig } from "../roles/config.ts";
import { bearerHeader, clientApiToken } from "./api-token.ts";

const { values: args } = parseArgs({
  options: {
    dir: { type: "string" },
    images: { type: "string", default: "1000" },
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "100" },
    /** A folder: the service writes a CPU profile of its main thread there (markdown) when it stops. */
    "cpu-prof": { type: "string" },
    /** Another checkout (its node_modules and model/onnx in place) whose service is measured in the same run, in turn. */
    baseline: { type: "string" },
    port: { type: "string", default: String(20000 + Math.floor(Math.random() * 40000)) },
  },
});
if (!args.dir) {
  console.error("usage: bun run scripts/bench-overhead.ts --dir DIR [--images 1000] [--rounds 3] [--concurrency 100] [--port P] [--baseline CHECKOUT] [--cpu-prof DIR]");
  process.exit(2);
}
const dir = args.dir;
const paths = readdirSync(dir)
  .sort()
  .flatMap((entry) => (statSync(join(dir, entry)).isDirectory() ? readdirSync(join(dir, entry)).sort().map((file) => join(dir, entry, file)) : [join(dir, entry)]))
  .filter((path) => /\.(jpe?g|png|webp)$/i.test(path))
  .slice(0, Number(args.images));
const images = await Promise.all(paths.map(async (path) => ({ name: path.slice(path.lastIndexOf("/") + 1), bytes: await Bun.file(path).bytes() })));
const concurrency = Number(args.concurrency);

/** One embedded service: its process, with its own port and data directory, and the client's calls to it. */
class Service {
  readonly url: string;
  readonly dataDir = mkdtempSync(join(tmpdir(), "bench-overhead-"));
  readonly env: Record<string, string | undefined>;
  readonly process: Bun.Subprocess;
  private readonly launched = performance.now();

  constructor(readonly label: string, checkout: string, port: number) {
    this.url = `http://127.0.0.1:${port}`;
    this.env = { ...process.env, NODE_ENV: "production", FACEFLEET_PORT: String(port), FACEFLEET_HOST: "127.0.0.1", FACEFLEET_DATA_DIR: this.dataDir, FACEFLEET_ANALYSIS_CACHE_ENTRIES: "0" };
    const profile = args["cpu-prof"] ? ["--cpu-prof-md", `--cpu-prof-dir=${args["cpu-prof"]}`, `--cpu-prof-name=${label}.md`] : [];
    this.process = Bun.spawn(["bun", ...profile, join(checkout, "index.ts")], { env: this.env, stdout: "ignore", stderr: "inherit" });
  }

  /** Asks the classic route about one image; an answer other than `expected` is an error. */
  async ask(image: (typeof images)[number], expected = 200): Promise<void> {
    const form = new FormData();
    form.append("inputFile", new File([image.bytes], image.name, { type: "image/jpeg" }));
    const response = await fetch(`${this.url}/`, { method: "POST", body: form });
    const body = await response.text();
    if (response.status !== expected) throw new Error(`${this.label}: ${image.name}: HTTP ${response.status} ${body}`);
  }

  /** Process start to the first answer from an app instance (with nobody enrolled yet: 409), asking until one comes. */
  async startUp(): Promise<number> {
    for (;;) {
      try {
        await this.ask(images[0]!, 409);
        return performance.now() - this.launched;
      } catch (error) {
        if (this.process.exitCode !== null) throw new Error(`${this.label} exited (${this.process.exitCode}) before answering`);
        if (!(error instanceof Error) || !/Unable to connect|ECONNREFUSED|HTTP 503/.test(error.message)) throw error;
        await Bun.sleep(20);
      }
    }
  }

  async enroll(image: (typeof images)[number]): Promise<void> {
    const form = new FormData();
    form.append("image", new File([image.bytes], image.name, { type: "image/jpeg" }));
    const headers = bearerHeader(clientApiToken(undefined, this.env));
    const response = await fetch(`${this.url}/v1/subjects/someone/faces?face=largest`, { method: "POST", body: form, headers });
    if (!response.ok) throw new Error(`${this.label}: enrolment: HTTP ${response.status} ${await response.text()}`);
  }

  /** Every image once, `concurrency` at a time: answers per second and the service's CPU per answer. */
  async round(): Promise<Measured> {
    let next = 0;
    const cpu = threadCpu(this.process.pid);
    const started = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(concurrency, images.length) }, async () => {
        while (next < images.length) await this.ask(images[next++]!);
      }),
    );
    return measured(started, cpu, threadCpu(this.process.pid));
  }

  async stop(): Promise<void> {
    this.process.kill("SIGTERM");
    await this.process.exited;
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

const THREAD_GROUPS = ["main", "pool", "inference", "other"] as const;
type ThreadCpu = Record<(typeof THREAD_GROUPS)[number], number>;

/** CPU milliseconds of a /proc stat line: user and system time, in clock ticks of 10 ms. */
function statCpuMs(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * CPU milliseconds of a process so far, by group of threads (their names say which). "other" is the process's total
 * less the three named groups, so it keeps the time of threads that have ended.
 */
function threadCpu(pid: number): ThreadCpu {
  const cpu: ThreadCpu = { main: 0, pool: 0, inference: 0, other: statCpuMs(readFileSync(`/proc/${pid}/stat`, "utf8")) };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended: its time is in the process's total
    }
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const group = tid === String(pid) ? "main" : name.startsWith("Bun Pool") ? "pool" : name === "Worker" || name.startsWith("libvips") ? "inference" : undefined;
    if (group === undefined) continue;
    cpu[group] += statCpuMs(stat);
    cpu.other -= statCpuMs(stat);
  }
  return cpu;
}

interface Measured {
  perSecond: number;
  allCpuMs: number;
  /** CPU per image by thread group. */
  cpuMs: ThreadCpu;
}

function measured(started: number, before: ThreadCpu, after: ThreadCpu): Measured {
  const cpuMs = Object.fromEntries(THREAD_GROUPS.map((group) => [group, (after[group] - before[group]) / images.length])) as ThreadCpu;
  return { perSecond: images.length / ((performance.now() - started) / 1000), allCpuMs: THREAD_GROUPS.reduce((sum, group) => sum + cpuMs[group], 0), cpuMs };
}

let pool: InferencePool | undefined;
/** Every image once through the bare pool: images per second and this process's CPU per image (its workers'; the main thread idles). */
async function pipelineRound(): Promise<Measured> {
  const cpu = threadCpu(process.pid);
  const started = performance.now();
  await Promise.all(images.map((image) => pool!.analyze(image.bytes).catch(() => undefined)));
  return measured(started, cpu, threadCpu(process.pid));
}

const byThread = (cpuMs: ThreadCpu) => THREAD_GROUPS.map((group) => `${group} ${round1(cpuMs[group])}`).join(", ");
const roundedThreads = (cpuMs: ThreadCpu) => Object.fromEntries(THREAD_GROUPS.map((group) => [group, round1(cpuMs[group])]));

const round1 = (x: number) => Math.round(x * 10) / 10;
const uptime = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const port = Number(args.port);
const services = [new Service("service", join(import.meta.dir, ".."), port)];
if (args.baseline) services.push(new Service("baseline", args.baseline, port + 1));
try {
  const startups = await Promise.all(services.map((service) => service.startUp()));
  services.forEach((service, i) => console.log(`${service.label} start-up (process start to first answer): ${Math.round(startups[i]!)} ms`));
  for (const service of services) await service.enroll(images[0]!);
  pool = await InferencePool.create({ config: loadConfig(services[0]!.env).model });
  // Warm every one (JIT, connections, the fleet's scale-out) before anything is timed.
  for (const service of services) await Promise.all(images.slice(0, 50).map((image) => service.ask(image)));
  await pipelineRound();
  type Result = { per_s: number; ratio: number; all_cpu_ms: number; cpu_ratio: number; cpu_ms_by_thread: Record<string, number> };
  const rounds: Record<string, Result | string>[] = [];
  for (let r = 0; r < Number(args.rounds); r++) {
    // The order turns each round, so whatever else loads the machine falls on each alike.
    const contenders = [...services.map((service) => service.label), "pipeline"];
    const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]!);
    const results: Record<string, Measured> = {};
    for (const label of order) results[label] = label === "pipeline" ? await pipelineRound() : await services.find((s) => s.label === label)!.round();
    const bare = results.pipeline!.perSecond;
    const bareCpuMs = results.pipeline!.allCpuMs;
    const row: Record<string, Result | string> = { load: uptime() };
    const parts = [];
    for (const service of services) {
      const m = results[service.label]!;
      const ratio = Math.round((m.perSecond / bare) * 1000) / 1000;
      const cpuRatio = Math.round((bareCpuMs / m.allCpuMs) * 1000) / 1000;
      row[service.label] = { per_s: round1(m.perSecond), ratio, all_cpu_ms: round1(m.allCpuMs), cpu_ratio: cpuRatio, cpu_ms_by_thread: roundedThreads(m.cpuMs) };
      parts.push(
        `${service.label} ${round1(m.perSecond)} answers/s, ratio ${ratio}; CPU per answer ${round1(m.allCpuMs)} ms (${byThread(m.cpuMs)}), answers per CPU second over images per CPU second ${cpuRatio}`,
      );
    }
    row.pipeline = { per_s: round1(bare), ratio: 1, all_cpu_ms: round1(bareCpuMs), cpu_ratio: 1, cpu_ms_by_thread: roundedThreads(results.pipeline!.cpuMs) };
    console.log(`round ${r + 1} (load ${row.load}): pipeline ${round1(bare)} images/s, CPU per image ${round1(bareCpuMs)} ms (${byThread(results.pipeline!.cpuMs)}); ${parts.join("; ")}`);
    rounds.push(row);
  }
  const total = (label: string, field: "per_s" | "all_cpu_ms") => rounds.reduce((sum, row) => sum + (row[label] as Result)[field], 0);
  const ratio = (x: number) => Math.round(x * 1000) / 1000;
  const ratios = Object.fromEntries(services.map(({ label }) => [label, ratio(total(label, "per_s") / total("pipeline", "per_s"))]));
  const cpuRatios = Object.fromEntries(services.map(({ label }) => [label, ratio(total("pipeline", "all_cpu_ms") / total(label, "all_cpu_ms"))]));
  console.log(`all rounds: ${services.map(({ label }) => `${label} ratio ${ratios[label]}, per CPU second ${cpuRatios[label]}`).join("; ")}`);
  console.log(JSON.stringify({ images: images.length, concurrency, startup_ms: Object.fromEntries(services.map((service, i) => [service.label, Math.round(startups[i]!)])), ratios, cpu_ratios: cpuRatios, rounds }));
} finally {
  await pool?.close();
  await Promise.all(services.map((service) => service.stop()));
}
