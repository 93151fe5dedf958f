/** ONNX Runtime sessions as every model uses them: one intra-op thread each (parallelism comes from worker threads). */
import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { arch, cpus, homedir } from "node:os";
import { basename, join } from "node:path";
import * as ort from "onnxruntime-node";

/** Where `bun run model:build` writes the ONNX files and where the runtime reads them. */
export const ONNX_DIR = join(import.meta.dir, "onnx");

/**
 * Where sessions keep the graphs onnxruntime optimised, to load next time without optimising again: the user's cache
 * directory (on an instance, the service's systemd CacheDirectory, the one place it may write).
 */
export const OPTIMIZED_GRAPH_DIR = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "facefleet", "optimized-onnx");

export type OnnxSession = ort.InferenceSession;

export class ModelFileMissingError extends Error {
  override name = "ModelFileMissingError";
}

const THREADS = { intraOpNumThreads: 1, interOpNumThreads: 1 } as const;
/** Only errors: saving at the "all" level warns that the graph may hold layouts for this CPU, which its key says. */
const QUIET = 3;

/**
 * How far onnxruntime rewrites a graph. "all" adds the layout rewrites for this CPU (float convolutions in NCHWc
 * blocks, int8 ones in NHWC with transposes around them), which a QDQ graph can run slower with (see model/README.md).
 */
export type GraphOptimization = "all" | "extended";

export interface SessionOptions {
  optimization?: GraphOptimization;
  /** Where the optimised graph is kept. */
  cacheDir?: string;
}

/**
 * Opens a network, optimised at `optimization` (default "all"). The optimised graph is kept in `cacheDir`, and later
 * sessions load it with optimisation off, which is faster (dlib-resnet: 45 ms instead of 120). Its name holds a hash
 * of the network file, the level, onnxruntime's version and the CPU (the "all" level may lay out tensors for this CPU's
 * instructions), so a changed network, level, runtime or machine never meets a graph optimised for another. A cache
 * that cannot be written or read only costs the optimisation.
 */
export async function openSession(path: string, { optimization = "all", cacheDir = OPTIMIZED_GRAPH_DIR }: SessionOptions = {}): Promise<OnnxSession> {
  if (!existsSync(path)) throw new ModelFileMissingError(`model file ${path} is missing: build the models with \`bun run model:build\``);
  const cached = await optimizedGraphFile(path, cacheDir, optimization);
  if (existsSync(cached)) {
    try {
      return await ort.InferenceSession.create(cached, { ...THREADS, graphOptimizationLevel: "disabled" });
    } catch {
      // Damaged: optimise again below (a read-only cache keeps it, and the graph is optimised at every start).
      await rm(cached, { force: true }).catch(() => {});
    }
  }
  const temp = `${cached}.${crypto.randomUUID()}.tmp`;
  let session: OnnxSession;
  try {
    await mkdir(cacheDir, { recursive: true });
    session = await ort.InferenceSession.create(path, { ...THREADS, graphOptimizationLevel: optimization, optimizedModelFilePath: temp, logSeverityLevel: QUIET });
  } catch {
    await rm(temp, { force: true }).catch(() => {});
    return ort.InferenceSession.create(path, { ...THREADS, graphOptimizationLevel: optimization });
  }
  // Whole or not at all, as other workers may be loading it.
  await rename(temp, cached).catch(() => rm(temp, { force: true }).catch(() => {}));
  return session;
}

/** What an optimised graph depends on besides its network: onnxruntime's version and the CPU it may be laid out for. */
export const RUNTIME = `onnxruntime ${ort.env.versions.common}\0${arch()}\0${cpus()[0]?.model ?? "unknown cpu"}`;

/**
 * Where the graph optimised from the network at `path` at `optimization` is kept: named by the level, the network's
 * content (a 64-bit hash: no one picks these files against us, and SHA-256 over dlib-resnet's 22 MB took half of what
 * the kept graph saves) and `runtime`'s.
 */
export async function optimizedGraphFile(path: string, cacheDir: string, optimization: GraphOptimization = "all", runtime = RUNTIME): Promise<string> {
  const hash = (bytes: Uint8Array | string) => Bun.hash.xxHash3(bytes).toString(16).padStart(16, "0");
  const level = optimization === "all" ? "" : `.${optimization}`;
  return join(cacheDir, `${basename(path, ".onnx")}${level}.${hash(await Bun.file(path).bytes())}-${hash(runtime)}.onnx`);
}

/** Runs a one-input, one-output float32 model and returns the output values. */
export async function runFloat(session: OnnxSession, input: Float32Array, dims: number[]): Promise<Float32Array> {
  const [inputName] = session.inputNames;
  const [outputName] = session.outputNames;
  const outputs = await session.run({ [inputName!]: new ort.Tensor("float32", input, dims) });
  return outputs[outputName!]!.data as Float32Array;
}

/** The file model:build writes the int8 (QDQ) version of a float32 network to. */
export function int8File(file: string): string {
  return file.replace(/\.onnx$/, "-int8.onnx");
}
