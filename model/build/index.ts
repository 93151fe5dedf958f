/** `bun run model:build`: converts the npm-shipped weights into ONNX files under model/onnx/, skipping ones already built (unless a source, such as a calibration table, is newer). */
import { mkdirSync, existsSync, writeFileSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { ONNX_DIR } from "../onnx-session.ts";
import { BUILD_TARGETS, type BuildTarget } from "./targets.ts";

export async function buildModels(force = false, targets: BuildTarget[] = BUILD_TARGETS): Promise<void> {
  mkdirSync(ONNX_DIR, { recursive: true });
  for (const target of targets) {
    const path = join(ONNX_DIR, target.file);
    if (!force && existsSync(path) && !(target.sources ?? []).some((source) => statSync(source).mtimeMs > statSync(path).mtimeMs)) continue;
    const started = performance.now();
    const bytes = await target.build();
    writeFileSync(`${path}.tmp`, bytes);
    renameSync(`${path}.tmp`, path);
    console.log(`model:build ${target.file} ${(bytes.byteLength / 1e6).toFixed(1)} MB in ${(performance.now() - started).toFixed(0)} ms`);
  }
}

if (import.meta.main) await buildModels(process.argv.includes("--force"));
