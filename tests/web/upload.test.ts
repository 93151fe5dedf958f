// Bounded uploads, over real HTTP against the web role in a process of its own (tests/web/upload-server.ts): a cap on
// bodies read at once, a chunked body refused as soon as it passes the limit, the file limit per file and the body
// bound per body, the slow-body deadline, nothing stored on a refusal, and the process's memory bounded while many
// large uploads arrive at once.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileBlobStore } from "../../roles/cloud/local/file-bucket.ts";
import { loadConfig, resourceNames } from "../../roles/config.ts";
import { noiseJpeg } from "./support.ts";
import { pngTextBomb } from "../support/hostile-images.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(60_000);

interface UploadServer {
  url: string;
  pid: number;
  stored(): Promise<number>;
  health(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function startUploadServer(settings: Record<string, string>): Promise<UploadServer> {
  const env = { FACEFLEET_DATA_DIR: mkdtempSync(join(tmpdir(), "facefleet-upload-")), FACEFLEET_API_TOKEN: "t", FACEFLEET_PREFIX: "uploads", ...settings };
  const child = Bun.spawn(["bun", join(import.meta.dir, "upload-server.ts")], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "inherit" });
  const reader = child.stdout.getReader();
  let output = "";
  while (!output.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`the upload server exited: ${output}`);
    output += new TextDecoder().decode(value);
  }
  const { port, pid } = JSON.parse(output) as { port: number; pid: number };
  const url = `http://127.0.0.1:${port}`;
  const inBucket = new FileBlobStore(env.FACEFLEET_DATA_DIR).bucket(resourceNames(loadConfig(env)).inBucket);
  return {
    url,
    pid,
    stored: () => inBucket.count(),
    health: async () => (await fetch(`${url}/healthz`)).json() as Promise<Record<string, unknown>>,
    async stop() {
      child.kill();
      await child.exited;
    },
  };
}

const BOUNDARY = "facefleet-test-boundary";
const MULTIPART = { "content-type": `multipart/form-data; boundary=${BOUNDARY}` };
const encoder = new TextEncoder();
const partHead = (fileName: string) =>
  encoder.encode(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="inputFile"; filename="${fileName}"\r\nContent-Type: image/jpeg\r\n\r\n`);

/**
 * A chunked multipart body (no content-length) whose file is `start`, then, with `then: "more"`, noise forever, or with
 * `then: "stall"`, nothing more, ever: either way it never ends by itself. `sent()` counts the bytes the server pulled.
 */
function endlessUpload(start: Uint8Array, then: "more" | "stall") {
  let sent = 0;
  let stalled: (() => void) | undefined;
  const chunks = [partHead("endless.jpg"), start];
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = chunks.shift() ?? (then === "more" ? crypto.getRandomValues(new Uint8Array(65536)) : undefined);
      if (!chunk) return new Promise<void>((resolve) => (stalled = resolve));
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
    cancel: () => stalled?.(),
  });
  return { body, sent: () => sent };
}

async function expectRefusal(response: Response, status: number, error: string): Promise<void> {
  expect(response.status).toBe(status);
  expect(await response.json()).toEqual({ error, message: expect.any(String), requestId: response.headers.get("x-request-id")! });
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
  return Number(line![1]) / 1024;
}

/** Runs `work` to its end, calling `sample` every 10 ms meanwhile. */
async function sampledWhile<T>(work: Promise<T>, sample: () => unknown): Promise<T> {
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sample();
      await Bun.sleep(10);
    }
  })();
  try {
    return await work;
  } finally {
    sampling = false;
    await sampler;
  }
}

/** `count` uploads of `bytes` to the classic route at once, as `<name>_<index>`, each answer read by `read`. */
function postFiles<T>(url: string, count: number, bytes: Uint8Array, name: string, type: string, read: (response: Response) => Promise<T>): Promise<T[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const form = new FormData();
      form.append("inputFile", new File([bytes], `${name}_${index}.${type.split("/")[1]}`, { type }));
      return read(await fetch(`${url}/`, { method: "POST", body: form }));
    }),
  );
}

const MAX_FILE_BYTES = 8 * 1024 * 1024;

describe("bounded uploads (at most 2 bodies read at once, 8 MiB each, 2 s to arrive)", () => {
  let server: UploadServer;
  let large: Uint8Array;
  beforeAll(async () => {
    large = await noiseJpeg(2000, 1500, 100);
    server = await startUploadServer({
      FACEFLEET_MAX_UPLOAD_BYTES: String(MAX_FILE_BYTES),
      FACEFLEET_CONCURRENT_UPLOADS: "2",
      FACEFLEET_UPLOAD_WAIT_MS: "30000",
      FACEFLEET_BODY_TIMEOUT_MS: "2000",
    });
  });
  afterAll(() => server?.stop());

  test("30 concurrent uploads of a several-MB JPEG: all answered, at most 2 bodies read at once, the process's memory bounded", async () => {
    expect(large.byteLength).toBeGreaterThan(3_000_000);
    const baseline = rssMb(server.pid);
    let peak = baseline;
    let mostReading = 0;
    let mostQueued = 0;
    const sample = async () => {
      peak = Math.max(peak, rssMb(server.pid));
      const health = await server.health();
      mostReading = Math.max(mostReading, health.uploadsReading as number);
      mostQueued = Math.max(mostQueued, health.uploadsQueued as number);
    };
    const answers = await sampledWhile(postFiles(server.url, 30, large, "large", "image/jpeg", async (response) => `${response.status} ${await response.text()}`), sample);
    expect(answers).toEqual(Array.from({ length: 30 }, (_, index) => `200 large_${index}:Paul`));
    expect(mostReading).toBeLessThanOrEqual(2);
    expect(mostQueued).toBeGreaterThan(0);
    // Held whole, the 30 bodies alone would be over 120 MB, before any copy or decoding. Streamed, two are in flight;
    // what grows is Bun's buffer of each waiting connection (about 1.5 MB) and the first use of sharp and the parser.
    console.log(`web process RSS: ${baseline.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB (${((30 * large.byteLength) / 1e6).toFixed(0)} MB uploaded)`);
    expect(30 * large.byteLength).toBeGreaterThan(120_000_000);
    expect(peak - baseline).toBeLessThan(120);
    expect(await server.stored()).toBe(30);
  });

  test("zTXt bombs (1x1 PNGs under 1 MB, 50 compressed text chunks of 20 MB each), one per upload slot: 400 metadata_too_large, the process's memory flat, nothing stored", async () => {
    const bomb = pngTextBomb();
    expect(bomb.byteLength).toBeLessThan(1_000_000);
    const stored = await server.stored();
    const baseline = rssMb(server.pid);
    let peak = baseline;
    const answers = await sampledWhile(
      postFiles(server.url, 2, bomb, "bomb", "image/png", async (response) => [response.status, ((await response.json()) as { error: string }).error]),
      () => (peak = Math.max(peak, rssMb(server.pid))),
    );
    expect(answers).toEqual([[400, "metadata_too_large"], [400, "metadata_too_large"]]);
    // Read with libvips, each took the process up by about 4 GB.
    console.log(`web process RSS under the zTXt bombs: ${baseline.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB`);
    expect(peak - baseline).toBeLessThan(100);
    expect(await server.stored()).toBe(stored);
  });

  test("a chunked body over the limit: 413 file_too_large with its request id while it is still being sent, nothing stored", async () => {
    const before = await server.stored();
    const upload = endlessUpload(large, "more");
    const response = await fetch(`${server.url}/`, { method: "POST", body: upload.body, headers: MULTIPART });
    await expectRefusal(response, 413, "file_too_large");
    expect(upload.sent()).toBeGreaterThan(MAX_FILE_BYTES);
    expect(await server.stored()).toBe(before);
  });

  test("a body that stops arriving: 408 body_timeout after the deadline, nothing stored, and its slot is free again", async () => {
    const before = await server.stored();
    const started = performance.now();
    const response = await fetch(`${server.url}/`, { method: "POST", body: endlessUpload(large.subarray(0, 100_000), "stall").body, headers: MULTIPART });
    await expectRefusal(response, 408, "body_timeout");
    expect(performance.now() - started).toBeGreaterThanOrEqual(1900);
    expect(await server.stored()).toBe(before);
    expect(await server.health()).toMatchObject({ uploadsReading: 0, uploadsQueued: 0 });
  });
});

describe("the file limit per file, the body bound per body (8 MiB and 20 MiB, set in the environment)", () => {
  const BODY_BOUND = 20 * 1024 * 1024;
  let server: UploadServer;
  let photo: Uint8Array;
  beforeAll(async () => {
    // A JPEG padded with zeros to 3 MB: the web role reads only its header.
    photo = new Uint8Array(3_000_000);
    photo.set(await noiseJpeg(64, 64));
    server = await startUploadServer({
      FACEFLEET_MAX_UPLOAD_BYTES: String(MAX_FILE_BYTES),
      FACEFLEET_MAX_BODY_BYTES: String(BODY_BOUND),
      // The fake app instance leaves each enrolled photo's embedding in the input bucket: the gallery's, here.
      FACEFLEET_GALLERY_BUCKET: "uploads-in-bucket",
    });
  });
  afterAll(() => server?.stop());

  const enroll = (body: FormData | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) =>
    fetch(`${server.url}/v1/subjects/Ada/faces`, { method: "POST", body, headers: { authorization: "Bearer t", ...headers } });
  const photos = (count: number) => {
    const form = new FormData();
    for (let i = 0; i < count; i++) form.append("image", new File([photo], `ada_${i}.jpg`, { type: "image/jpeg" }));
    return form;
  };

  test("an enrollment of five 3 MB photos (15 MB, past the file limit together): every photo enrolled", async () => {
    const response = await enroll(photos(5));
    expect(response.status).toBe(200);
    const { results } = (await response.json()) as { results: { status: number }[] };
    expect(results.map((result) => result.status)).toEqual([201, 201, 201, 201, 201]);
  });

  test("eight of them (24 MB, past the body bound): 413 body_too_large from content-length, nothing stored", async () => {
    const before = await server.stored();
    await expectRefusal(await enroll(photos(8)), 413, "body_too_large");
    expect(await server.stored()).toBe(before);
  });

  test("a chunked body past the body bound: 413 body_too_large while it is still being sent, nothing stored", async () => {
    const before = await server.stored();
    const upload = endlessUpload(photo, "more");
    await expectRefusal(await enroll(upload.body, MULTIPART), 413, "body_too_large");
    expect(upload.sent()).toBeGreaterThan(BODY_BOUND);
    expect(await server.stored()).toBe(before);
  });
});

describe("no slot free within the wait: 503 busy", () => {
  let server: UploadServer;
  beforeAll(async () => {
    server = await startUploadServer({ FACEFLEET_CONCURRENT_UPLOADS: "1", FACEFLEET_UPLOAD_WAIT_MS: "300", FACEFLEET_BODY_TIMEOUT_MS: "3000" });
  });
  afterAll(() => server?.stop());

  test("one stalled body holds the only slot: the next upload gets 503 busy after the wait, nothing stored", async () => {
    const header = (await noiseJpeg(200, 200)).subarray(0, 2000);
    const stalled = fetch(`${server.url}/`, { method: "POST", body: endlessUpload(header, "stall").body, headers: MULTIPART });
    await Bun.sleep(200);
    const form = new FormData();
    form.append("inputFile", new File([await noiseJpeg(64, 64)], "next.jpg", { type: "image/jpeg" }));
    await expectRefusal(await fetch(`${server.url}/`, { method: "POST", body: form }), 503, "busy");
    await expectRefusal(await stalled, 408, "body_timeout");
    expect(await server.stored()).toBe(0);
  });
});
