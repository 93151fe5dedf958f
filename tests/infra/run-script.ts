/** Runs an infra script as a user does: a separate process, configured only through the SDK's standard environment. */
import { REPO_ROOT, type EmulatedRegion } from "../../infra/sim/region.ts";

export async function runInfraScript(region: EmulatedRegion, script: string, args: string[], options: { prefix: string; stateFile: string; stdin?: string; env?: Record<string, string> }) {
  const child = Bun.spawn([process.execPath, `infra/${script}.ts`, "--state-file", options.stateFile, "--poll-seconds", "0.05", ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...region.env, AWS_EC2_METADATA_DISABLED: "true", FACEFLEET_PREFIX: options.prefix, ...options.env },
    stdin: new TextEncoder().encode(options.stdin ?? ""),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr, output: stdout + stderr };
}
