/**
 * A pool of inference worker threads: one image per worker at a time, a FIFO queue, crashed workers replaced. A caller
 * may abandon an image (its signal aborts): queued, it is dropped; running, its worker is terminated and replaced, as a
 * hung worker never answers.
 */
import { availableParallelism } from "node:os";
import type { ModelConfig } from "./config.ts";
import { ONNX_DIR } from "./onnx-session.ts";
import type { ImageAnalysis } from "./types.ts";
import { fromWorkerError, type FromWorker, type ToWorker } from "./worker-messages.ts";

export interface PoolOptions {
  config: ModelConfig;
  /** Worker threads; default config.workers, where 0 means one per core. */
  workers?: number;
  onnxDir?: string;
  /** The worker script; tests substitute their own. */
  workerUrl?: string | URL;
}

export interface PoolStats {
  workers: number;
  busy: number;
  queued: number;
}

interface Job {
  id: number;
  image: Uint8Array;
  resolve(analysis: ImageAnalysis): void;
  reject(error: Error): void;
}

interface Slot {
  worker: Worker;
  job?: Job;
}

const REPLACE_RETRY_MS = 500;
const REPLACE_RETRY_MAX_MS = 30_000;

export class WorkerCrashError extends Error {
  override name = "WorkerCrashError";
}

export class InferencePool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;
  /** Set while no worker runs and the last replacement failed to load: jobs fail at once rather than wait forever. */
  private unavailable: Error | undefined;

  private constructor(private readonly spawnWorker: () => Promise<Worker>) {}

  /** Starts the workers and resolves once every one has loaded its models. */
  static async create(options: PoolOptions): Promise<InferencePool> {
    const onnxDir = options.onnxDir ?? ONNX_DIR;
    const count = options.workers || options.config.workers || availableParallelism();
    const url = options.workerUrl ?? new URL("./worker.ts", import.meta.url);
    const pool = new InferencePool(() => startWorker(url, { type: "load", config: options.config, onnxDir }));
    const workers = await Promise.allSettled(Array.from({ length: count }, () => pool.spawnWorker()));
    const failure = workers.find((w) => w.status === "rejected");
    for (const w of workers) if (w.status === "fulfilled") pool.adopt(w.value);
    if (failure) {
      await pool.close();
      throw failure.reason;
    }
    return pool;
  }

  analyze(image: Uint8Array, signal?: AbortSignal): Promise<ImageAnalysis> {
    if (this.closed) return Promise.reject(new Error("the inference pool is closed"));
    if (this.unavailable) return Promise.reject(this.unavailable);
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const abandon = () => this.abandon(job, signal!.reason);
      const settle = () => signal?.removeEventListener("abort", abandon);
      const job: Job = {
        id: this.nextId++,
        image,
        resolve: (analysis) => (settle(), resolve(analysis)),
        reject: (error) => (settle(), reject(error)),
      };
      signal?.addEventListener("abort", abandon, { once: true });
      this.queue.push(job);
      this.dispatch();
    });
  }

  stats(): PoolStats {
    return { workers: this.slots.length, busy: this.slots.filter((s) => s.job).length, queued: this.queue.length };
  }

  /** Stops every worker; jobs still queued or running are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const error = new Error("the inference pool was closed");
    for (const job of this.queue.splice(0)) job.reject(error);
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      slot.job?.reject(error);
      slot.worker.terminate();
    }
  }

  private adopt(worker: Worker): void {
    this.unavailable = undefined;
    const slot: Slot = { worker };
    this.slots.push(slot);
    worker.onmessage = ({ data: message }: MessageEvent<FromWorker>) => {
      const job = slot.job;
      if (!job || !("id" in message) || message.id !== job.id) return;
      slot.job = undefined;
      if (message.type === "analysis") job.resolve(message.analysis);
      else if (message.type === "analysis-failed") job.reject(fromWorkerError(message.error));
      this.dispatch();
    };
    const crashed = (reason: string) => this.retire(slot, new WorkerCrashError(`an inference worker crashed (${reason}) while analysing an image`));
    worker.onerror = (event) => crashed(event.message);
    worker.addEventListener("close", (event) => crashed(`exit code ${(event as CloseEvent).code}`));
    this.dispatch();
  }

  /** Terminates a slot's worker, fails its job with `error` and starts a replacement. */
  private retire(slot: Slot, error: Error): void {
    const index = this.slots.indexOf(slot);
    if (index < 0) return;
    this.slots.splice(index, 1);
    const job = slot.job;
    slot.job = undefined;
    job?.reject(error);
    slot.worker.terminate();
    if (!this.closed) this.replace();
  }

  private abandon(job: Job, reason: unknown): void {
    const error = reason instanceof Error ? reason : new Error(String(reason));
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      job.reject(error);
      return;
    }
    const slot = this.slots.find((candidate) => candidate.job === job);
    if (slot) this.retire(slot, error);
  }

  /** Starts a worker in place of a crashed one, trying again with backoff for as long as its loading fails. */
  private replace(attempt = 0): void {
    this.spawnWorker().then(
      (worker) => (this.closed ? worker.terminate() : this.adopt(worker)),
      (error: Error) => {
        const retryMs = Math.min(REPLACE_RETRY_MAX_MS, REPLACE_RETRY_MS * 2 ** attempt);
        console.error(`inference pool: a replacement worker failed to load (${error.message}); trying again in ${retryMs} ms`);
        if (this.slots.length === 0) {
          this.unavailable = new WorkerCrashError(`no inference worker is running: a replacement failed to load (${error.message})`);
          for (const job of this.queue.splice(0)) job.reject(this.unavailable);
        }
        setTimeout(() => this.closed || this.replace(attempt + 1), retryMs);
      },
    );
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.job) continue;
      const job = this.queue.shift();
      if (!job) return;
      slot.job = job;
      const message: ToWorker = { type: "analyze", id: job.id, image: job.image };
      slot.worker.postMessage(message);
    }
  }
}

/** Starts a worker and waits for its models to load. */
function startWorker(url: string | URL, load: ToWorker): Promise<Worker> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(url);
    worker.onmessage = ({ data: message }: MessageEvent<FromWorker>) => {
      if (message.type === "ready") resolve(worker);
      else if (message.type === "load-failed") {
        worker.terminate();
        reject(fromWorkerError(message.error));
      }
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(`an inference worker failed to start: ${event.message}`));
    };
    worker.postMessage(load);
  });
}
