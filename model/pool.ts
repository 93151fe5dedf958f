/**
 * A pool of inference worker threads: one image per worker at a time, a FIFO queue, crashed workers replaced. A caller
 * may abandon an image (its signal aborts): queued, it is dropped; running, its worker is terminated and replaced, as a
 * hung worker never answers.
 *
 * The pool holds at most two images per worker: the one it works on and the next, read ahead so the worker does not
 * wait on storage. Callers may pass how to read an image rather than its bytes; the pool reads it only once it admits
 * it, so however many jobs wait for the pool, their images wait in storage, not in memory. Bytes the pool read are
 * its own and move to the worker without a copy.
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
  /** Images waiting for a worker: admitted or not. */
  queued: number;
  /** Images admitted, so being read, read or being analysed: at most two per worker. */
  admitted: number;
}

/** An image's bytes, or how to read them (called once the pool admits the image; what it returns is the pool's). */
export type ImageSource = Uint8Array | (() => Promise<Uint8Array>);

interface Job {
  id: number;
  source: ImageSource;
  /** Set once read: the job waits for a worker or is on one. */
  image?: Uint8Array;
  /** The pool read `image` itself, so it may move it to the worker rather than copy it. */
  owned: boolean;
  /** Its read is under way: the job keeps its admission until the read ends, settled or not, so unwanted bytes count too. */
  reading: boolean;
  settled: boolean;
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

/** Images admitted per worker: the one it works on and the next. */
const ADMITTED_PER_WORKER = 2;

export class InferencePool {
  private readonly slots: Slot[] = [];
  /** Not admitted yet, first come first served. */
  private readonly waiting: Job[] = [];
  /** Admitted: being read, read (then also in `ready`) or on a worker. */
  private readonly admitted = new Set<Job>();
  /** Read and waiting for a worker, in admission order. */
  private readonly ready: Job[] = [];
  private nextId = 0;
  private closed = false;
  /** Set while no worker runs and the last replacement failed to load: jobs fail at once rather than wait forever. */
  private unavailable: Error | undefined;

  private constructor(
    private readonly spawnWorker: () => Promise<Worker>,
    private readonly admissionLimit: number,
  ) {}

  /** Starts the workers and resolves once every one has loaded its models. */
  static async create(options: PoolOptions): Promise<InferencePool> {
    const onnxDir = options.onnxDir ?? ONNX_DIR;
    const count = options.workers || options.config.workers || availableParallelism();
    const url = options.workerUrl ?? new URL("./worker.ts", import.meta.url);
    const pool = new InferencePool(() => startWorker(url, { type: "load", config: options.config, onnxDir }), ADMITTED_PER_WORKER * count);
    const workers = await Promise.allSettled(Array.from({ length: count }, () => pool.spawnWorker()));
    const failure = workers.find((w) => w.status === "rejected");
    for (const w of workers) if (w.status === "fulfilled") pool.adopt(w.value);
    if (failure) {
      await pool.close();
      throw failure.reason;
    }
    return pool;
  }

  analyze(image: ImageSource, signal?: AbortSignal): Promise<ImageAnalysis> {
    if (this.closed) return Promise.reject(new Error("the inference pool is closed"));
    if (this.unavailable) return Promise.reject(this.unavailable);
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const abandon = () => this.abandon(job, signal!.reason);
      const settle = (answer: () => void) => {
        if (job.settled) return;
        job.settled = true;
        signal?.removeEventListener("abort", abandon);
        this.release(job);
        answer();
      };
      const job: Job = {
        id: this.nextId++,
        source: image,
        owned: false,
        reading: false,
        settled: false,
        resolve: (analysis) => settle(() => resolve(analysis)),
        reject: (error) => settle(() => reject(error)),
      };
      signal?.addEventListener("abort", abandon, { once: true });
      this.waiting.push(job);
      this.admit();
    });
  }

  stats(): PoolStats {
    return {
      workers: this.slots.length,
      busy: this.slots.filter((s) => s.job).length,
      queued: this.waiting.length + this.admitted.size - this.slots.filter((s) => s.job).length,
      admitted: this.admitted.size,
    };
  }

  /** Stops every worker; jobs still queued or running are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const error = new Error("the inference pool was closed");
    this.rejectWaiting(error);
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      slot.job?.reject(error);
      slot.worker.terminate();
    }
    for (const job of [...this.admitted]) job.reject(error);
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

  /** Waiting, being read or read, the job is dropped; on a worker, the worker is replaced. */
  private abandon(job: Job, reason: unknown): void {
    const error = reason instanceof Error ? reason : new Error(String(reason));
    const slot = this.slots.find((candidate) => candidate.job === job);
    if (slot) this.retire(slot, error);
    else job.reject(error);
  }

  /** A settled job leaves the queues and, unless its read is still under way, gives its admission to the next one. */
  private release(job: Job): void {
    const waiting = this.waiting.indexOf(job);
    if (waiting >= 0) this.waiting.splice(waiting, 1);
    const ready = this.ready.indexOf(job);
    if (ready >= 0) this.ready.splice(ready, 1);
    job.image = undefined;
    if (!job.reading && this.admitted.delete(job)) this.admit();
    this.dispatch();
  }

  private rejectWaiting(error: Error): void {
    for (const job of [...this.waiting, ...this.ready]) job.reject(error);
  }

  /** Admits waiting jobs up to the limit and reads their images. */
  private admit(): void {
    while (!this.closed && this.admitted.size < this.admissionLimit) {
      const job = this.waiting.shift();
      if (!job) return;
      this.admitted.add(job);
      const source = job.source;
      if (source instanceof Uint8Array) {
        this.readied(job, source, false);
        continue;
      }
      job.reading = true;
      const readEnded = () => {
        job.reading = false;
        if (job.settled) this.release(job);
      };
      Promise.resolve()
        .then(source)
        .then(
          (image) => (readEnded(), job.settled || this.readied(job, image, true)),
          (error: unknown) => (readEnded(), job.reject(error instanceof Error ? error : new Error(String(error)))),
        );
    }
  }

  private readied(job: Job, image: Uint8Array, owned: boolean): void {
    if (this.unavailable) return job.reject(this.unavailable);
    job.image = image;
    job.owned = owned;
    this.ready.push(job);
    this.dispatch();
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
          this.rejectWaiting(this.unavailable);
        }
        setTimeout(() => this.closed || this.replace(attempt + 1), retryMs);
      },
    );
  }

  private dispatch(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (slot.job) continue;
      const job = this.ready.shift();
      if (!job) return;
      slot.job = job;
      const image = job.image!;
      const message: ToWorker = { type: "analyze", id: job.id, image };
      const whole = image.byteOffset === 0 && image.byteLength === image.buffer.byteLength;
      slot.worker.postMessage(message, job.owned && whole && image.buffer instanceof ArrayBuffer ? [image.buffer] : []);
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
