import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { ModelConfigSchema, type ModelConfig } from "../../model/config.ts";
import { InferencePool, WorkerCrashError } from "../../model/pool.ts";
import { ImageError } from "../../model/types.ts";
import { queryPhotos } from "../support/fixtures.ts";

const config: ModelConfig = Value.Default(ModelConfigSchema, {}) as ModelConfig;
const echoWorker = new URL("./support/echo-worker.ts", import.meta.url);
const image = (first: number) => new Uint8Array([first, 1, 2, 3]);

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await Bun.sleep(5);
  }
}

describe("the pool's scheduling, with a stand-in worker", () => {
  test("one job per worker, the rest queued, every answer to its own caller", async () => {
    const pool = await InferencePool.create({ config, workers: 2, onnxDir: "unused", workerUrl: echoWorker });
    try {
      const answers = [10, 20, 30, 40, 50, 60].map((n) => pool.analyze(image(n)));
      expect(pool.stats()).toEqual({ workers: 2, busy: 2, queued: 4, admitted: 4 });
      expect((await Promise.all(answers)).map((a) => a.width)).toEqual([10, 20, 30, 40, 50, 60]);
      expect(pool.stats()).toEqual({ workers: 2, busy: 0, queued: 0, admitted: 0 });
    } finally {
      await pool.close();
    }
  });

  test("an ImageError in the worker reaches the caller with its code", async () => {
    const pool = await InferencePool.create({ config, workers: 1, onnxDir: "unused", workerUrl: echoWorker });
    try {
      const error = await pool.analyze(image(0)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ImageError);
      expect((error as ImageError).code).toBe("empty");
    } finally {
      await pool.close();
    }
  });

  test("a crashed worker fails only its own job and is replaced", async () => {
    const pool = await InferencePool.create({ config, workers: 2, onnxDir: "unused", workerUrl: echoWorker });
    try {
      const crashing = pool.analyze(image(0xff));
      const others = [1, 2, 3].map((n) => pool.analyze(image(n)));
      expect(await crashing.catch((e: unknown) => e)).toBeInstanceOf(WorkerCrashError);
      expect((await Promise.all(others)).map((a) => a.width)).toEqual([1, 2, 3]);
      await until(() => pool.stats().workers === 2);
      expect((await Promise.all([pool.analyze(image(7)), pool.analyze(image(8))])).map((a) => a.width)).toEqual([7, 8]);
    } finally {
      await pool.close();
    }
  });

  test("an abandoned image: queued, it is dropped; running, its hung worker is terminated and replaced", async () => {
    const pool = await InferencePool.create({ config, workers: 1, onnxDir: "unused", workerUrl: echoWorker });
    try {
      const hung = new AbortController();
      const queued = new AbortController();
      const hanging = pool.analyze(image(0xfe), hung.signal);
      const waiting = pool.analyze(image(5), queued.signal);
      const after = pool.analyze(image(6));
      queued.abort(new Error("gave up waiting"));
      expect(((await waiting.catch((e: unknown) => e)) as Error).message).toBe("gave up waiting");
      expect(pool.stats()).toEqual({ workers: 1, busy: 1, queued: 1, admitted: 2 });
      hung.abort(new Error("past its deadline"));
      expect(((await hanging.catch((e: unknown) => e)) as Error).message).toBe("past its deadline");
      expect((await after).width).toBe(6);
      expect(pool.stats()).toEqual({ workers: 1, busy: 0, queued: 0, admitted: 0 });
    } finally {
      await pool.close();
    }
  });

  test("when no worker runs and its replacement cannot load, jobs fail at once; the pool tries again and recovers", async () => {
    const models = mkdtempSync(join(tmpdir(), "pool-models-"));
    const pool = await InferencePool.create({ config, workers: 1, onnxDir: models, workerUrl: echoWorker });
    try {
      writeFileSync(join(models, "fail"), "");
      expect(await pool.analyze(image(0xff)).catch((e: unknown) => e)).toBeInstanceOf(WorkerCrashError);
      const waiting = await pool.analyze(image(1)).catch((e: unknown) => e);
      expect(waiting).toBeInstanceOf(WorkerCrashError);
      expect((waiting as Error).message).toContain("failed to load");
      const started = performance.now();
      expect(await pool.analyze(image(2)).catch((e: unknown) => e)).toBeInstanceOf(WorkerCrashError);
      expect(performance.now() - started).toBeLessThan(100);
      rmSync(join(models, "fail"));
      await until(() => pool.stats().workers === 1, 10_000);
      expect((await pool.analyze(image(9))).width).toBe(9);
    } finally {
      await pool.close();
      rmSync(models, { recursive: true, force: true });
    }
  });

  test("close rejects queued jobs and later calls", async () => {
    const pool = await InferencePool.create({ config, workers: 1, onnxDir: "unused", workerUrl: echoWorker });
    const running = pool.analyze(image(1));
    const queued = pool.analyze(image(2));
    await pool.close();
    expect(await running.catch((e: unknown) => e)).toBeInstanceOf(Error);
    expect(await queued.catch((e: unknown) => e)).toBeInstanceOf(Error);
    expect(await pool.analyze(image(3)).catch((e: unknown) => e)).toBeInstanceOf(Error);
  });

  test("a worker that cannot load its models fails the pool's creation", async () => {
    expect(await InferencePool.create({ config, workers: 2, onnxDir: "fail", workerUrl: echoWorker }).catch((e: unknown) => e)).toBeInstanceOf(Error);
  });
});

describe("the pool's admission: images are read only when a worker can take them soon", () => {
  /** Images in memory (read, not yet answered), at most, over every call. */
  function tracked() {
    let held = 0;
    let maxHeld = 0;
    const reads: number[] = [];
    const source = (first: number) => async () => {
      reads.push(first);
      await Bun.sleep(5);
      held++;
      maxHeld = Math.max(maxHeld, held);
      return image(first);
    };
    const answered = <T>(analysis: Promise<T>) => analysis.finally(() => held--);
    return { reads, source, answered, maxHeld: () => maxHeld };
  }

  test("one worker: at most two images read (the one analysed and the next), the rest wait unread, every answer to its own caller", async () => {
    const pool = await InferencePool.create({ config, workers: 1, onnxDir: "unused", workerUrl: echoWorker });
    try {
      const { reads, source, answered, maxHeld } = tracked();
      const answers = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => answered(pool.analyze(source(n))));
      await Bun.sleep(20);
      expect(reads).toEqual([1, 2]);
      expect(pool.stats()).toMatchObject({ busy: 1, queued: 7, admitted: 2 });
      expect((await Promise.all(answers)).map((a) => a.width)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(maxHeld()).toBe(2);
      expect(pool.stats()).toEqual({ workers: 1, busy: 0, queued: 0, admitted: 0 });
    } finally {
      await pool.close();
    }
  });

  test("an image abandoned while it waits for admission is dropped unread; one abandoned while read frees its admission once read", async () => {
    const pool = await InferencePool.create({ config, workers: 1, onnxDir: "unused", workerUrl: echoWorker });
    try {
      const reads: number[] = [];
      let finishRead = () => {};
      const slowRead = () => new Promise<Uint8Array>((resolve) => (reads.push(2), (finishRead = () => resolve(image(2)))));
      const running = pool.analyze(image(1));
      const beingRead = new AbortController();
      const reading = pool.analyze(slowRead, beingRead.signal);
      const waitingCaller = new AbortController();
      const waiting = pool.analyze(async () => (reads.push(3), image(3)), waitingCaller.signal);
      const after = pool.analyze(async () => (reads.push(4), image(4)));
      await Bun.sleep(0);
      waitingCaller.abort(new Error("gave up waiting"));
      expect(((await waiting.catch((e: unknown) => e)) as Error).message).toBe("gave up waiting");
      beingRead.abort(new Error("gave up reading"));
      expect(((await reading.catch((e: unknown) => e)) as Error).message).toBe("gave up reading");
      expect(pool.stats()).toMatchObject({ admitted: 2 }); // the read under way still holds its place
      expect((await running).width).toBe(1);
      finishRead();
      expect((await after).width).toBe(4);
      expect(reads).toEqual([2, 4]);
    } finally {
      await pool.close();
    }
  });

  test("a read that fails fails its own image only", async () => {
    const pool = await InferencePool.create({ config, workers: 1, onnxDir: "unused", workerUrl: echoWorker });
    try {
      const failing = pool.analyze(async () => {
        throw new Error("storage unreachable");
      });
      const next = pool.analyze(async () => image(6));
      expect(((await failing.catch((e: unknown) => e)) as Error).message).toBe("storage unreachable");
      expect((await next).width).toBe(6);
      expect(pool.stats().admitted).toBe(0);
    } finally {
      await pool.close();
    }
  });

  test("bytes the pool read move to the worker without a copy; bytes a caller holds are copied", async () => {
    const pool = await InferencePool.create({ config, workers: 1, onnxDir: "unused", workerUrl: echoWorker });
    try {
      const read = image(8);
      const given = image(9);
      expect((await pool.analyze(async () => read)).width).toBe(8);
      expect((await pool.analyze(given)).width).toBe(9);
      expect([read.byteLength, given.byteLength]).toEqual([0, 4]);
    } finally {
      await pool.close();
    }
  });
});

describe("the real worker", () => {
  // query_1.jpg of the sample set: 139x208, one face.
  const photo = queryPhotos()[0]!.file;
  let pool: InferencePool | undefined;
  afterAll(() => pool?.close());

  test("analyses a photo: one face with a unit-length embedding; text is an ImageError", async () => {
    pool = await InferencePool.create({ config, workers: 1 });
    const analysis = await pool.analyze(new Uint8Array(await Bun.file(photo).arrayBuffer()));
    expect([analysis.width, analysis.height]).toEqual([139, 208]);
    expect(analysis.faces.length).toBe(1);
    const [face] = analysis.faces;
    expect(face!.wholeImage).toBe(false);
    expect(Math.hypot(...face!.embedding)).toBeCloseTo(1, 4);
    expect(analysis.timings.embedMs).toBeGreaterThan(0);
    const error = await pool.analyze(new TextEncoder().encode("not a picture")).catch((e: unknown) => e);
    expect((error as ImageError).code).toBe("not_an_image");
  });
});
