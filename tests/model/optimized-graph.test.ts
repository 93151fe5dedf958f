import { afterEach, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { DLIB_RESNET_FILE } from "../../model/embedders/dlib-resnet.ts";
import { LANDMARK68_FILE } from "../../model/landmarkers/landmark68.ts";
import { int8File, ONNX_DIR, openSession, optimizedGraphFile, RUNTIME, runFloat, type GraphOptimization } from "../../model/onnx-session.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(60_000);

let work: string;
let cacheDir: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), "optimized-graph-"));
  cacheDir = join(work, "cache");
});
afterEach(() => {
  chmodSync(work, 0o755);
  rmSync(work, { recursive: true, force: true });
});

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

  test("the kept graph's name follows the network's content and the runtime's version, not the file's path", async () => {
    const original = join(ONNX_DIR, LANDMARK68_FILE);
    const copy = join(work, LANDMARK68_FILE);
    copyFileSync(original, copy);
    const name = async (path: string, runtime?: string) => (await optimizedGraphFile(path, cacheDir, "all", runtime)).slice(cacheDir.length);
    expect(await name(copy)).toBe(await name(original));
    expect(await name(copy, RUNTIME)).toBe(await name(copy));
    expect(await name(copy, RUNTIME.replace(/^onnxruntime [^\0]+/, "onnxruntime 0.0.0"))).not.toBe(await name(copy));
    const bytes = await Bun.file(copy).bytes();
    bytes[0] = bytes[0]! ^ 1;
    writeFileSync(copy, bytes);
    expect(await name(copy)).not.toBe(await name(original));
  });

  test("a damaged kept graph that cannot be removed costs only the optimisation", async () => {
    const path = join(ONNX_DIR, LANDMARK68_FILE);
    // A directory where the graph should be: neither loadable nor removable (as a damaged file in a read-only cache).
    mkdirSync(join(await optimizedGraphFile(path, cacheDir), "in-the-way"), { recursive: true });
    const pixels = input(112 * 112 * 3);
    const session = await openSession(path, { cacheDir });
    expect(await runFloat(session, pixels, [1, 112, 112, 3])).toEqual(await runFloat(await fresh(path), pixels, [1, 112, 112, 3]));
  });

  test("the inference pool starts and answers with a read-only cache holding a damaged graph of every network", async () => {
    // The process's own cache directory (XDG_CACHE_HOME, as an instance's unit sets it), read-only to it.
    const cacheHome = join(work, "cache-home");
    const graphs = join(cacheHome, "facefleet", "optimized-onnx");
    mkdirSync(graphs, { recursive: true });
    for (const file of readdirSync(ONNX_DIR).filter((name) => name.endsWith(".onnx"))) {
      for (const level of ["all", "extended"] as const) writeFileSync(await optimizedGraphFile(join(ONNX_DIR, file), graphs, level), "damaged");
    }
    for (const dir of [graphs, join(cacheHome, "facefleet"), cacheHome]) chmodSync(dir, 0o555);
    chmodSync(work, 0o755);
    // Root writes anywhere: the pool then runs as nobody, to whom the cache is read-only.
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const script = `
      import { InferencePool } from "./model/index.ts";
      import { loadConfig } from "./roles/config.ts";
      const pool = await InferencePool.create({ config: loadConfig({}).model, workers: 1 });
      const analysis = await pool.analyze(await Bun.file("tests/fixtures/queries/query_1.jpg").bytes());
      console.log(JSON.stringify({ faces: analysis.faces.length }));
      await pool.close();`;
    const child = spawn(process.execPath, ["-e", script], { cwd: resolve(import.meta.dir, "../.."), env: { PATH: process.env.PATH, HOME: cacheHome, XDG_CACHE_HOME: cacheHome }, ...asNobody });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const code = await new Promise<number | null>((done) => child.on("close", done));
    if (code !== 0 && asNobody.uid !== undefined && /EACCES|permission denied/i.test(output) && !output.includes("optimized-onnx")) {
      console.warn(`skipped: user nobody cannot read this checkout (${output.trim().split("\n")[0]})`);
      return;
    }
    expect({ code, output: output.trim().split("\n").at(-1) }).toEqual({ code: 0, output: JSON.stringify({ faces: 1 }) });
    // Nothing was written, and the damaged graphs are still there.
    expect(readdirSync(graphs).every((name) => statSync(join(graphs, name)).size === "damaged".length)).toBe(true);
  });
});
