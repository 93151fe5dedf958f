/**
 * The AWS deployment in an emulated region on loopback: S3 and SQS (fauxqs), EC2 whose instances are local
 * `bun index.ts` processes finding their role through instance metadata, IAM. Runs infra/bootstrap.ts,
 * infra/bake-ami.ts and infra/launch.ts against it as a user would against AWS, so the web tier answers on
 * port 8000 like the real one. Prints the course grader's table every second; on SIGINT/SIGTERM tears
 * everything down and prints, as its last line, one JSON object with the scaling figures.
 *   bun run scripts/cloud-sim.ts [--boot-delay SECONDS] [--start-delay SECONDS] [--pool warm|cold] [--port 8000]
 * --boot-delay is pending -> running after a launch; --start-delay after a start of a stopped instance (default: the
 * boot delay).
 * The admin token, as on AWS: FACEFLEET_API_TOKEN when the caller set it, else the one bootstrap creates and prints
 * (`export FACEFLEET_API_TOKEN=...`). Bootstrap stores it in the input bucket, where the web role reads it.
 */
import { parseArgs } from "node:util";
import { startSimDeployment, type SimDeployment } from "./sim-deployment.ts";

const { values: args } = parseArgs({
  options: {
    "boot-delay": { type: "string", default: "0" },
    "start-delay": { type: "string" },
    pool: { type: "string", default: "warm" },
    port: { type: "string", default: "8000" },
  },
});
if (args.pool !== "warm" && args.pool !== "cold") throw new Error("--pool is warm or cold");
const bootDelayMs = Number(args["boot-delay"]) * 1000;
const startDelayMs = Number(args["start-delay"] ?? args["boot-delay"]) * 1000;
const SAMPLE_MS = 100;

/** Counted before the web tier can take a request, so `requests` misses none sent the moment it answers. */
let inputsAtStart = 0;
let deployment: SimDeployment;
try {
  deployment = await startSimDeployment({
    bootDelayMs,
    startDelayMs,
    pool: args.pool,
    port: Number(args.port),
    beforeLaunch: async ({ cloud, names }) => {
      inputsAtStart = await cloud.blobs.bucket(names.inBucket).count();
    },
  });
} catch (error) {
  console.error(String(error));
  process.exit(1);
}
const { region, config, names, cloud, webUrl, infra } = deployment;
const requestQueue = cloud.queues.queue(names.reqQueue);
const responseQueue = cloud.queues.queue(names.respQueue);
const deadLetterQueue = cloud.queues.queue(names.deadLetterQueue);
const inputs = cloud.blobs.bucket(names.inBucket);
const outputs = cloud.blobs.bucket(names.outBucket);
console.error(`web tier answering on ${webUrl} (boot delay ${bootDelayMs / 1000} s, start delay ${startDelayMs / 1000} s, ${args.pool} pool); Ctrl-C tears down`);
console.error(
  process.env.FACEFLEET_API_TOKEN
    ? "the subjects API takes your FACEFLEET_API_TOKEN"
    : "the subjects API takes the FACEFLEET_API_TOKEN bootstrap printed above",
);

const figures = { maxRunning: 0, scaleOutS: 0, scaleInS: 0 };
let burst: { startedAt: number; peakAt: number; peak: number } | undefined;
let lastBusyAt: number | undefined;
let latest = { request: 0, response: 0, running: 0 };

/** Every 100 ms: queue depth and running app instances, for the scaling figures. */
async function sample(): Promise<void> {
  const [request, response, instances] = await Promise.all([requestQueue.depth(), responseQueue.depth(), cloud.fleet.list()]);
  const now = performance.now();
  const backlog = request.visible + request.inFlight;
  const running = instances.filter((instance) => instance.state === "running").length;
  latest = { request: backlog, response: response.visible + response.inFlight, running };
  figures.maxRunning = Math.max(figures.maxRunning, running);
  if (backlog > 0) {
    burst ??= { startedAt: now, peakAt: now, peak: 0 };
    if (running > burst.peak) Object.assign(burst, { peak: running, peakAt: now });
    figures.scaleOutS = (burst.peakAt - burst.startedAt) / 1000;
    lastBusyAt = now;
  } else {
    burst = undefined;
    if (lastBusyAt !== undefined && running === 0) {
      figures.scaleInS = (now - lastBusyAt) / 1000;
      lastBusyAt = undefined;
    }
  }
}

let stopping = false;
const sampler = (async () => {
  while (!stopping) {
    await sample().catch((error) => console.error(`sample failed: ${error}`));
    await Bun.sleep(SAMPLE_MS);
  }
})();

console.log("time      request-queue  response-queue  running-app-instances  in-bucket  out-bucket");
const table = setInterval(async () => {
  const counts = await Promise.all([inputs.count(), outputs.count()]).catch(() => undefined);
  if (!counts) return;
  const [inCount, outCount] = counts;
  const time = new Date().toISOString().slice(11, 19);
  console.log(`${time}  ${String(latest.request).padStart(13)}  ${String(latest.response).padStart(14)}  ${String(latest.running).padStart(21)}  ${String(inCount).padStart(9)}  ${String(outCount).padStart(10)}`);
}, 1000);

async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(table);
  await sampler;
  const requests = (await inputs.count()) - inputsAtStart;
  const left = await Promise.all([requestQueue.depth(), deadLetterQueue.depth()]);
  const lost = left.reduce((sum, depth) => sum + depth.visible + depth.inFlight, 0);
  await infra("teardown", "--yes").finally(() => region.stop());
  const round = (x: number) => Math.round(x * 100) / 100;
  console.log(
    JSON.stringify({
      max_running: figures.maxRunning,
      exceeded_max: figures.maxRunning > config.maxAppInstances,
      scale_out_s: round(figures.scaleOutS),
      scale_in_s: round(figures.scaleInS),
      requests,
      lost,
    }),
  );
  process.exit(0);
}
process.on("SIGINT", () => void shutdown());
process.on("SIGTERM", () => void shutdown());
