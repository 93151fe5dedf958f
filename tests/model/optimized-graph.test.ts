import { afterEach, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { DLIB_RESNET_FILE } from "../../model/embedders/dlib-resnet.ts";
import { LANDMARK68_FILE } from "../../model/landmarkers/landmark68.ts";
import { int8File, ONNX_DIR, openSession, runFloat, type GraphOptimization } from "../../model/onnx-session.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(60_000);

let work: string;
let cacheDir: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), "optimized-graph-"));
  cacheDir = join(work, "cache");
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

/** The same pseudo-random pixels every time. */
function input(length: number): Float32Array {
  let state = 12345;
  return Float32Array.from({ length }, () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 255);
}

const fresh = (path: string, optimization: GraphOptimization = "all") =>
  ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: optimization });
const cachedFiles = () => (existsSync(cacheDir) ? readdirSync(cacheDir) : []);

describe("the optimised graph kept between sessions", () => {
  test.each<[string, GraphOptimization, number[]]>([
    [DLIB_RESNET_FILE, "all", [1, 150, 150, 3]],
    [LANDMARK68_FILE, "all", [1, 112, 112, 3]],
    [int8File(DLIB_RESNET_FILE), "extended", [2, 150, 150, 3]],
  ])("%s at level %s: a session from the kept graph gives exactly a fresh session's outputs", async (file, optimization, dims) => {
    const path = join(ONNX_DIR, file);
    const pixels = input(dims.reduce((a, b) => a * b, 1));
    const expected = await runFloat(await fresh(path, optimization), pixels, dims);
    const first = await openSession(path, { cacheDir, optimization });
    expect(cachedFiles()).toHaveLength(1);
    const second = await openSession(path, { cacheDir, optimization });
    expect(cachedFiles()).toHaveLength(1);
    expect(await runFloat(first, pixels, dims)).toEqual(expected);
    expect(await runFloat(second, pixels, dims)).toEqual(expected);
  });

  test("each level keeps a graph of its own", async () => {
    const path = join(ONNX_DIR, int8File(DLIB_RESNET_FILE));
    const pixels = input(150 * 150 * 3);
    const extended = await openSession(path, { cacheDir, optimization: "extended" });
    const all = await openSession(path, { cacheDir });
    expect(cachedFiles()).toHaveLength(2);
    expect(await runFloat(extended, pixels, [1, 150, 150, 3])).toEqual(await runFloat(await fresh(path, "extended"), pixels, [1, 150, 150, 3]));
    expect(await runFloat(all, pixels, [1, 150, 150, 3])).toEqual(await runFloat(await fresh(path), pixels, [1, 150, 150, 3]));
  });

  test("the second session loads the kept graph rather than optimising and writing it again", async () => {
    const path = join(ONNX_DIR, LANDMARK68_FILE);
    await openSession(path, { cacheDir });
    const [kept] = cachedFiles();
    const written = statSync(join(cacheDir, kept!)).mtimeMs;
    await Bun.sleep(20);
    await openSession(path, { cacheDir });
    expect(cachedFiles()).toEqual([kept!]);
    expect(statSync(join(cacheDir, kept!)).mtimeMs).toBe(written);
  });

  test("a changed network file gets a graph of its own, never the old one's", async () => {
    const path = join(work, "network.onnx");
    copyFileSync(join(ONNX_DIR, LANDMARK68_FILE), path);
    await openSession(path, { cacheDir });
    copyFileSync(join(ONNX_DIR, DLIB_RESNET_FILE), path);
    const session = await openSession(path, { cacheDir });
    expect(cachedFiles()).toHaveLength(2);
    const pixels = input(150 * 150 * 3);
    expect(await runFloat(session, pixels, [1, 150, 150, 3])).toEqual(await runFloat(await fresh(path), pixels, [1, 150, 150, 3]));
  });

  test("a damaged kept graph is optimised and written again", async () => {
    const path = join(ONNX_DIR, LANDMARK68_FILE);
    await openSession(path, { cacheDir });
    const kept = join(cacheDir, cachedFiles()[0]!);
    writeFileSync(kept, "not a network");
    const pixels = input(112 * 112 * 3);
    const session = await openSession(path, { cacheDir });
    expect(await runFloat(session, pixels, [1, 112, 112, 3])).toEqual(await runFloat(await fresh(path), pixels, [1, 112, 112, 3]));
    expect(statSync(kept).size).toBeGreaterThan(1000);
  });

  test("a cache directory that cannot be written costs only the optimisation", async () => {
    const path = join(ONNX_DIR, LANDMARK68_FILE);
    writeFileSync(cacheDir, "a file where the folder should be");
    const pixels = input(112 * 112 * 3);
    const session = await openSession(path, { cacheDir });
    expect(await runFloat(session, pixels, [1, 112, 112, 3])).toEqual(await runFloat(await fresh(path), pixels, [1, 112, 112, 3]));
  });
});
