/**
 * The service as the measuring scripts (scripts/burst.ts, scripts/fuzz.ts) start it: each `bun index.ts` in a process
 * group of its own (its pid is the group's id), so it is measured and stopped with everything it starts; and the split
 * setup, where the web role runs in its own process on the emulated region (infra/sim/region.ts: S3 and SQS from
 * fauxqs, in the calling process) with one app process beside it answering the jobs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { CreateQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { startRegion, type EmulatedRegion } from "../infra/sim/region.ts";
import { loadConfig, resourceNames } from "../roles/config.ts";

const REPO_ROOT = resolve(import.meta.dir, "..");

/** Where a process's output goes: "ignore"; "inherit", its stderr to this process's (its stdout dropped); or both to an open file descriptor. */
export type Output = "ignore" | "inherit" | number;

export function startGroup(command: string[], env: Record<string, string>, output: Output): ChildProcess {
  const child = spawn(command[0]!, command.slice(1), { cwd: REPO_ROOT, env: { ...process.env, ...env }, detached: true, stdio: ["ignore", output === "inherit" ? "ignore" : output, output] });
  child.unref();
  return child;
}

const running = (child: ChildProcess) => child.pid !== undefined && child.exitCode === null && child.signalCode === null;

/** Signals the child's whole group; nothing when it has ended. Synchronous, so it can run in an `exit` handler. */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!running(child)) return;
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL after 10 s. */
export async function stopGroup(child: ChildProcess): Promise<void> {
  if (!running(child)) return;
  const exited = new Promise((done) => child.once("exit", done));
  signalGroup(child, "SIGTERM");
  const timer = setTimeout(() => signalGroup(child, "SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Waits up to 180 s for `url`/healthz to answer 200; throws at once if one of `processes` exits meanwhile. */
export async function waitForHealth(url: string, processes: ChildProcess[], logHint = ""): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const exited = processes.find((child) => !running(child));
    if (exited) throw new Error(`the service process '${exited.spawnargs.slice(1).join(" ")}' exited with code ${exited.exitCode} before it answered${logHint}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(250);
  }
  throw new Error(`no answer from ${url}/healthz within 180 s`);
}

export interface SplitService {
  /** The web process (`bun index.ts --role <webRoles>`). */
  web: ChildProcess;
  /** The app process (`bun index.ts --role app`). */
  app: ChildProcess;
  /** The emulated region both run on, for the caller's own SDK clients. */
  region: EmulatedRegion;
  /** Both processes' FACEFLEET_* and AWS settings. */
  env: Record<string, string>;
  /** Stops both processes, then the region. */
  stop(): Promise<void>;
}

export interface SplitOptions {
  /** FACEFLEET_* settings of both processes (port, host, token...). */
  settings: Record<string, string>;
  /** The deployment's name prefix (its buckets and queues are created under it). */
  prefix: string;
  /** The web process's roles: "web", or "web+controller" as the web instance runs them on EC2. */
  webRoles: "web" | "web+controller";
  output: { web: Output; app: Output };
}

/** The emulated region, the deployment's buckets and queues in it, and the web and app processes on it. */
export async function startSplitService(options: SplitOptions): Promise<SplitService> {
  const region = await startRegion({ instanceProcess: () => undefined });
  const env = { ...options.settings, ...region.env, FACEFLEET_PREFIX: options.prefix, FACEFLEET_S3_FORCE_PATH_STYLE: "true" };
  const names = resourceNames(loadConfig(env));
  const s3 = new S3Client({ ...region.clientConfig, endpoint: region.endpoints.s3, forcePathStyle: true });
  const sqs = new SQSClient({ ...region.clientConfig, endpoint: region.endpoints.sqs });
  for (const bucket of new Set([names.inBucket, names.outBucket, names.galleryBucket, names.reportsBucket])) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  for (const queue of [names.reqQueue, names.respQueue, names.deadLetterQueue]) await sqs.send(new CreateQueueCommand({ QueueName: queue }));
  s3.destroy();
  sqs.destroy();
  const web = startGroup(["bun", "index.ts", "--role", options.webRoles], env, options.output.web);
  const app = startGroup(["bun", "index.ts", "--role", "app"], env, options.output.app);
  return {
    web,
    app,
    region,
    env,
    async stop() {
      await stopGroup(web);
      await stopGroup(app);
      await region.stop();
    },
  };
}
