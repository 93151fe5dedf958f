// The image keeps production dependencies only and builds its models before it boots: what `bun index.ts` loads,
// worker threads included, must not need the model build, the infra scripts, the tests or a dev dependency, and a
// model file that is missing must say how to make it.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { ModelConfigSchema, type ModelConfig } from "../../model/config.ts";
import { InferencePool } from "../../model/pool.ts";
import { PROJECT_ROOT } from "../../infra/project-tarball.ts";
import packageJson from "../../package.json";

const transpiler = new Bun.Transpiler({ loader: "ts" });
/** A module loaded by URL, as `new Worker(new URL("./worker.ts", import.meta.url))` loads the inference worker. */
const URL_LOADED = /new URL\(\s*["']([^"']+)["']\s*,\s*import\.meta\.url\s*\)/g;

const packageOf = (specifier: string) => specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/");
const isBuiltin = (specifier: string) => specifier.startsWith("node:") || specifier.startsWith("bun:") || specifier === "bun" || builtinModules.includes(specifier);

/** Every project file reachable from the entry points through runtime imports, and the packages they import. */
function runtimeGraph(entries: string[]): { files: string[]; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const pending = entries.map((entry) => join(PROJECT_ROOT, entry));
  while (pending.length) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const code = readFileSync(file, "utf8");
    const specifiers = [...transpiler.scanImports(code).map((found) => found.path), ...[...code.matchAll(URL_LOADED)].map((match) => match[1]!)];
    for (const specifier of specifiers) {
      if (specifier.startsWith(".")) pending.push(resolve(dirname(file), specifier));
      else if (!isBuiltin(specifier)) packages.set(packageOf(specifier), relative(PROJECT_ROOT, file));
    }
  }
  return { files: [...files].map((file) => relative(PROJECT_ROOT, file)).sort(), packages };
}

describe("what the runtime loads", () => {
  const { files, packages } = runtimeGraph(["index.ts"]);

  test("reaches the roles, the model and its worker thread, and no build, infra, script or test code", () => {
    expect(files).toContain("roles/start.ts");
    expect(files).toContain("model/worker.ts");
    expect(files.filter((file) => !/^(index\.ts|roles\/|model\/)/.test(file) || file.startsWith("model/build/"))).toEqual([]);
  });

  test("imports production dependencies only", () => {
    const production = new Set(Object.keys(packageJson.dependencies));
    const others = [...packages].filter(([name]) => !production.has(name)).map(([name, importer]) => `${name} (from ${importer})`);
    expect(others).toEqual([]);
  });
});

test("an inference worker whose model files are missing fails to load with an error that names bun run model:build", async () => {
  const empty = mkdtempSync(join(tmpdir(), "facefleet-no-models-"));
  try {
    const config = Value.Default(ModelConfigSchema, {}) as ModelConfig;
    const failure = await InferencePool.create({ config, workers: 1, onnxDir: empty }).then(
      () => new Error("the pool loaded without model files"),
      (error: Error) => error,
    );
    expect(failure.message).toContain(`model file ${empty}/`);
    expect(failure.message).toContain("is missing: build the models with `bun run model:build`");
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});
