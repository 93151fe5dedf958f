// What the baked image does, on this machine: the project tarball bake-ami uploads (packProject), unpacked, installed
// by the image's own steps (full install, model build, node_modules replaced by production dependencies only), then
// `bun index.ts` booted from that copy, embedded, and asked over HTTP. A runtime import of a dev dependency or of the
// model build fails here, as it would on the image's first boot. Bun's install cache makes the installs take seconds.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { packProject } from "../../infra/project-tarball.ts";
import { PROJECT_INSTALL_STEPS, systemdUnit } from "../../infra/user-data.ts";
import { enrollSampleSet, postImage } from "../service/support.ts";
import { queryPhotos } from "../support/fixtures.ts";
import { freePort, waitFor } from "../support/waiting.ts";

setDefaultTimeout(60_000);

const TOKEN = "production-install-test-token";
const childEnv = () => ({ PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`, HOME: process.env.HOME ?? tmpdir() });

let work: string;
let projectDir: string;
let service: ReturnType<typeof Bun.spawn> | undefined;
let url: string;

async function run(command: string[], cwd: string): Promise<string> {
  const child = Bun.spawn(command, { cwd, env: childEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`${command.join(" ")} exited ${code}:\n${stdout}${stderr}`);
  return stdout + stderr;
}

/** Every file and directory under `dir` with its modification time: what a process wrote there shows as a difference. */
function snapshot(dir: string): Map<string, number> {
  const entries = readdirSync(dir, { recursive: true, encoding: "utf8" });
  return new Map(entries.map((entry) => [entry, statSync(join(dir, entry)).mtimeMs]));
}

/** The environment the unit gives the service (its `Environment=` line): HOME and the caches in its cache directory. */
function unitEnvironment(cacheDir: string): Record<string, string> {
  const line = systemdUnit().split("\n").find((entry) => entry.startsWith("Environment="))!;
  return Object.fromEntries(line.slice("Environment=".length).split(" ").map((pair) => [pair.split("=")[0]!, cacheDir]));
}

describe("the project installed as the image installs it, production dependencies only", () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "facefleet-production-"));
    projectDir = join(work, "facefleet");
    mkdirSync(projectDir);
    await Bun.write(join(work, "facefleet.tar.gz"), packProject().bytes);
    await run(["tar", "-xzf", join(work, "facefleet.tar.gz"), "-C", projectDir, "--no-same-owner"], work);
    await run(["bash", "-euo", "pipefail", "-c", PROJECT_INSTALL_STEPS.join("\n")], projectDir);
  });

  afterAll(async () => {
    service?.kill("SIGTERM");
    await service?.exited;
    rmSync(work, { recursive: true, force: true });
  });

  test("the copy holds its models and no dev dependency", () => {
    expect(existsSync(join(projectDir, "model/onnx/face-api-dlib-resnet.onnx"))).toBe(true);
    expect(existsSync(join(projectDir, "node_modules/onnxruntime-node/package.json"))).toBe(true);
    for (const dev of ["onnx-proto", "@tensorflow/tfjs", "@vladmandic/face-api", "fauxqs"]) expect(existsSync(join(projectDir, "node_modules", dev))).toBe(false);
  });

  test("bun index.ts boots from the copy, enrolls people and answers the classic request for each, writing only its cache and data", async () => {
    const before = snapshot(projectDir);
    const cacheDir = join(work, "cache");
    const port = freePort();
    url = `http://127.0.0.1:${port}`;
    service = Bun.spawn([process.execPath, "index.ts"], {
      cwd: projectDir,
      env: { ...childEnv(), ...unitEnvironment(cacheDir), FACEFLEET_ROLE: "all", FACEFLEET_HOST: "127.0.0.1", FACEFLEET_PORT: String(port), FACEFLEET_DATA_DIR: join(work, "data"), FACEFLEET_API_TOKEN: TOKEN },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const child = service;
    const output = Promise.all([child.stdout, child.stderr].map((stream) => new Response(stream as ReadableStream<Uint8Array>).text())).then((parts) => parts.join(""));
    // A process that dies at boot (a missing package, say) ends the wait with its output.
    const exited = child.exited.then(async (code) => `exited ${code}:\n${await output}`);
    const ready = await Promise.race([waitFor("the service's health", () => fetch(`${url}/healthz`).then((r) => (r.ok ? "ready" : undefined), () => undefined), 30_000), exited]);
    expect(ready).toBe("ready");

    // The sample set of tests/fixtures: its people enrolled, another photo of each asked.
    await enrollSampleSet({ url, auth: { authorization: `Bearer ${TOKEN}` } });
    for (const query of queryPhotos()) expect(await (await postImage(url, query.file)).text()).toBe(`${query.name}:${query.person}`);
    // The unit leaves the service one writable directory, its cache: Bun and onnxruntime write there, the project
    // directory stays as the install left it (the data directory is the embedded mode's, which the image never runs).
    expect(readdirSync(cacheDir).length).toBeGreaterThan(0);
    expect(snapshot(projectDir)).toEqual(before);
  });
});
