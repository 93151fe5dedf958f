import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { runScript, temporaryFolder } from "./support.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

interface Received {
  field: string;
  fileName: string;
  type: string;
  bytes: string;
}

/** A stand-in for the service: right about a, b, c; wrong about d; failing on e. Records what it receives. */
function startStub(delayMs: number) {
  const received: Received[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const url = new URL(request.url);
      if (request.method !== "POST" || url.pathname !== "/") return new Response("not found", { status: 404 });
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        const form = await request.formData();
        for (const [field, value] of form) {
          if (value instanceof Blob) received.push({ field, fileName: (value as File).name, type: value.type, bytes: await value.text() });
        }
        await Bun.sleep(delayMs);
        const file = form.get("inputFile");
        if (!(file instanceof Blob)) return new Response("missing inputFile", { status: 400 });
        const name = (file as File).name.replace(/\.[^.]*$/, "");
        if (name === "e") return new Response("boom", { status: 500 });
        if (name === "hang") await Bun.sleep(5_000);
        return new Response(`${name}:${name === "d" ? "Somebody Else" : `Person ${name}`}`, { headers: { "content-type": "text/plain" } });
      } finally {
        inFlight--;
      }
    },
  });
  return { server, received, maxInFlight: () => maxInFlight, url: `http://127.0.0.1:${server.port}` };
}

let stub: ReturnType<typeof startStub> | undefined;
afterEach(() => stub?.server.stop(true));

const images = { "a.jpg": "A", "b.jpg": "B", "c.png": "C", "d.jpg": "D", "e.jpg": "E", "notes.txt": "not an image" };
const labels = "Image,Results\na,Person a\nb,Person b\nc,Person c\nd,Person d\ne,Person e\n";

describe("workload client", () => {
  test("speaks the course protocol, cycles over the images, counts right, wrong and failed, ends with one JSON line", async () => {
    stub = startStub(20);
    const folder = temporaryFolder({ ...Object.fromEntries(Object.entries(images).map(([f, c]) => [`images/${f}`, c])), "labels.csv": labels });
    const run = await runScript("workload.ts", ["--url", stub.url, "--images", join(folder, "images"), "--labels", join(folder, "labels.csv"), "--requests", "12", "--concurrency", "3"]);

    expect(run.exitCode).toBe(0);
    expect(stub.received).toHaveLength(12);
    expect(stub.received.every((r) => r.field === "inputFile")).toBe(true);
    // Sorted folder order, cycled: a b c d e a b c d e a b; the text file is skipped.
    expect(stub.received.map((r) => r.fileName).sort()).toEqual(["a.jpg", "a.jpg", "a.jpg", "b.jpg", "b.jpg", "b.jpg", "c.png", "c.png", "d.jpg", "d.jpg", "e.jpg", "e.jpg"]);
    expect(stub.received.find((r) => r.fileName === "c.png")).toMatchObject({ bytes: "C", type: "image/png" });
    expect(stub.received.find((r) => r.fileName === "a.jpg")).toMatchObject({ bytes: "A", type: "image/jpeg" });
    expect(stub.maxInFlight()).toBe(3);

    const summary = run.summary;
    expect(Object.keys(summary)).toEqual(["requests", "correct", "failed", "average_s", "p50_s", "p95_s", "p99_s", "total_s"]);
    expect(summary).toMatchObject({ requests: 12, correct: 8, failed: 2 });
    const { average_s, p50_s, p95_s, p99_s, total_s } = summary as Record<"average_s" | "p50_s" | "p95_s" | "p99_s" | "total_s", number>;
    expect(average_s).toBeCloseTo(total_s / 12, 3);
    expect(p50_s).toBeGreaterThanOrEqual(0.02);
    expect(p50_s).toBeLessThanOrEqual(p95_s);
    expect(p95_s).toBeLessThanOrEqual(p99_s);
    // 12 requests of >= 20 ms, 3 at a time: at least 4 rounds.
    expect(total_s).toBeGreaterThanOrEqual(0.08);
    expect(run.stdout).toContain("2 wrong");
    expect(run.stderr).toContain("12/12");
  });

  test("counts a server that cannot be reached as failures, not a crash", async () => {
    stub = startStub(0);
    const url = stub.url;
    stub.server.stop(true);
    const folder = temporaryFolder({ "images/a.jpg": "A", "labels.csv": labels });
    const run = await runScript("workload.ts", ["--url", url, "--images", join(folder, "images"), "--labels", join(folder, "labels.csv"), "--requests", "3"]);
    expect(run.summary).toMatchObject({ requests: 3, correct: 0, failed: 3 });
  });

  test("a request unanswered within --timeout counts as failed", async () => {
    stub = startStub(0);
    const folder = temporaryFolder({ "images/a.jpg": "A", "images/hang.jpg": "H", "labels.csv": labels });
    const started = performance.now();
    const run = await runScript("workload.ts", ["--url", stub.url, "--images", join(folder, "images"), "--labels", join(folder, "labels.csv"), "--requests", "4", "--timeout", "0.3"]);
    expect(run.summary).toMatchObject({ requests: 4, correct: 2, failed: 2 });
    expect(run.stdout).toContain("failure: ");
    expect(performance.now() - started).toBeLessThan(4_000);
  });
});
