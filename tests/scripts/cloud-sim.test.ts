// scripts/cloud-sim.ts as a user runs it: the deployment comes up in the emulated region, the web tier answers on the
// given port, the grader's table is printed every second, and SIGINT tears everything down and prints the scaling
// figures as the last line. The caller's FACEFLEET_API_TOKEN is the deployment's admin token.
import { expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import sharp from "sharp";
import { freePort, waitFor } from "../support/waiting.ts";

// Boots a region, bakes an image and launches instances: well over bun's default 5 s on a loaded 2-core machine.
setDefaultTimeout(90_000);

const ROOT = join(import.meta.dir, "..", "..");
const API_TOKEN = "cloud-sim-test-token-0123456789";
const TABLE_HEADER = /^time\s+request-queue\s+response-queue\s+running-app-instances\s+in-bucket\s+out-bucket$/;

/** Collects a stream's text as it arrives. */
function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  })();
  return { text: () => text, done };
}

test("answers on its port through a launched app instance, takes the caller's admin token, prints the grader's table, and on SIGINT tears down and prints its figures", async () => {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = Bun.spawn([process.execPath, "scripts/cloud-sim.ts", "--port", String(port), "--pool", "cold"], {
    cwd: ROOT,
    env: { ...process.env, FACEFLEET_API_TOKEN: API_TOKEN },
    stdout: "pipe",
    stderr: "pipe",
  });
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  /** The table's rows so far: [request queue, response queue, running app instances, in bucket, out bucket]. */
  const rows = () =>
    stdout
      .text()
      .split("\n")
      .map((line) => line.trim().split(/\s+/))
      .filter((cells) => cells.length === 6 && /^\d\d:\d\d:\d\d$/.test(cells[0]!))
      .map((cells) => cells.slice(1).map(Number));
  try {
    await waitFor("the web tier", () => fetch(`${url}/healthz`).then((response) => (response.ok ? true : undefined), () => undefined), 60_000);
    const subjects = await fetch(`${url}/v1/subjects`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
    expect(subjects.status).toBe(200);
    expect(await subjects.json()).toEqual({ subjects: [], page: 1, size: 100, total: 0 });
    const image = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 200, g: 150, b: 120 } } }).jpeg().toBuffer();
    const form = new FormData();
    form.append("inputFile", new File([image], "probe.jpg", { type: "image/jpeg" }));
    const answer = await fetch(url, { method: "POST", body: form });
    // Nobody is enrolled: the app instance the controller launched for this job says so.
    expect(answer.status).toBe(409);
    expect(((await answer.json()) as { error: string }).error).toBe("no_subjects_enrolled");
    const answeredAt = rows().length;
    await waitFor("the app pool back at 0 in the table", () => (rows().slice(answeredAt).some((row) => row[2] === 0) ? true : undefined), 30_000);
  } finally {
    child.kill("SIGINT");
  }
  const code = await child.exited;
  await Promise.all([stdout.done, stderr.done]);
  expect(code, stderr.text()).toBe(0);
  const lines = stdout.text().trim().split("\n");
  expect(lines.some((line) => TABLE_HEADER.test(line))).toBe(true);
  expect(rows().length).toBeGreaterThan(0);
  expect(Math.max(...rows().map((row) => row[2]!))).toBeLessThanOrEqual(15);
  const figures = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
  expect(figures).toMatchObject({ max_running: 1, exceeded_max: false, requests: 1, lost: 0 });
  expect(figures.scale_in_s).toBeGreaterThan(0);
  expect(figures.scale_in_s).toBeLessThanOrEqual(2);
  expect(stdout.text()).toContain("deployment 'facefleet-sim' is gone");
  // Bootstrap stored the caller's token rather than making one up, and nothing printed it.
  expect(stdout.text()).toContain("store the admin token as private object s3://facefleet-sim-in-bucket/_secrets/api-token");
  expect(stdout.text()).not.toContain("export FACEFLEET_API_TOKEN=");
  expect(stdout.text() + stderr.text()).not.toContain(API_TOKEN);
  expect(stderr.text()).toContain("the subjects API takes your FACEFLEET_API_TOKEN");
});
