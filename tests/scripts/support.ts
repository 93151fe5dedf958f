/** Scaffolding for the HTTP client scripts: a temporary image folder, and running a script as the user would. */
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");

/** Writes `files` (relative path -> bytes) under a fresh temporary folder and returns its path. */
export function temporaryFolder(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "facefleet-scripts-"));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

export interface ScriptRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The last stdout line, parsed. */
  summary: Record<string, unknown>;
}

/** `env` is added to this process's environment. */
export async function runScript(script: string, args: string[], env: Record<string, string> = {}): Promise<ScriptRun> {
  const child = Bun.spawn(["bun", join(ROOT, "scripts", script), ...args], { stdout: "pipe", stderr: "pipe", cwd: ROOT, env: { ...process.env, ...env } });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  const last = stdout.trim().split("\n").pop() ?? "";
  let summary: Record<string, unknown> = {};
  try {
    summary = JSON.parse(last);
  } catch {
    throw new Error(`${script} did not end with a JSON line (exit ${exitCode}):\n${stdout}\n${stderr}`);
  }
  return { exitCode, stdout, stderr, summary };
}
