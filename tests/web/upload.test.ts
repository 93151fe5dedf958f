// Bounded uploads, over real HTTP against the web role in a process of its own (tests/web/upload-server.ts): a cap on
// bodies read at once, a chunked body refused as soon as it passes the limit, the file limit per file and the body
// bound per body, the slow-body deadline, nothing stored on a refusal, and the process's memory bounded while many
// large uploads arrive at once. Then fair slots, from several loopback addresses: slow anonymous bodies beside the
// API, the minimum pace, the cap per address, the classic route's rate limit.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
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

/**
 * A chunked body of `bytes` bytes of `fill`, 1 MiB a chunk, that ends early once `stop()` is called (when its answer
 * came); `sent()` counts the bytes the server pulled.
 */
function flood(bytes: number, fill: number) {
  const chunk = new Uint8Array(1024 * 1024).fill(fill);
  let sent = 0;
  let stopped = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (stopped || sent >= bytes) return controller.close();
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  return { body, sent: () => sent, stop: () => void (stopped = true) };
}

/** A request that declares a body of `length` bytes and sends its first MiB: its answer (status and raw text), sent before the body is read. */
function declaredBody(url: string, path: string, headers: Record<string, string>, length: number): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  return new Promise((resolve) => {
    let received = "";
    const settle = () => {
      socket.destroy();
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0), text: received });
    };
    socket.on("data", (data) => {
      received += data.toString();
      if (received.includes("}")) settle();
    });
    socket.on("close", settle);
    socket.on("error", () => {});
    socket.on("connect", () => {
      const head = Object.entries({ host: hostname, ...headers, "content-length": String(length) }).map(([name, value]) => `${name}: ${value}\r\n`).join("");
      socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n`);
      socket.write(new Uint8Array(1024 * 1024));
    });
  });
}

describe("the file limit per file, the body bound per body (8 MiB and 20 MiB, set in the environment)", () => {
  const BODY_BOUND = 20 * 1024 * 1024;
  // Its own bound: Bun's backstop for the whole server is twice it, far past every other route's.
  const IMPORT_BOUND = 128 * 1024 * 1024;
  let server: UploadServer;
  let photo: Uint8Array;
  beforeAll(async () => {
    // A JPEG padded with zeros to 3 MB: the web role reads only its header.
    photo = new Uint8Array(3_000_000);
    photo.set(await noiseJpeg(64, 64));
    server = await startUploadServer({
      FACEFLEET_MAX_UPLOAD_BYTES: String(MAX_FILE_BYTES),
      FACEFLEET_MAX_BODY_BYTES: String(BODY_BOUND),
      FACEFLEET_MAX_IMPORT_BYTES: String(IMPORT_BOUND),
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
  test("200 MB bodies from strangers and a recognition key, declared and chunked, on every kind of route: refused early with their codes, the process's memory flat", async () => {
    const FLOOD = 200_000_000;
    const created = await fetch(`${server.url}/v1/keys`, { method: "POST", body: JSON.stringify({ name: "flood" }), headers: { authorization: "Bearer t", "content-type": "application/json" } });
    const { key } = (await created.json()) as { key: string };
    const keyed = { authorization: `Bearer ${key}` };
    const json = { "content-type": "application/json" };
    const ndjson = { "content-type": "application/x-ndjson" };
    const cases: { path: string; headers: Record<string, string>; declared: string; chunked: string }[] = [
      { path: "/", headers: MULTIPART, declared: "413 body_too_large", chunked: "413 file_too_large" },
      { path: "/v1/subjects/Ada/faces", headers: MULTIPART, declared: "413 body_too_large", chunked: "401 unauthorized" },
      { path: "/v1/gallery/import", headers: ndjson, declared: "401 unauthorized", chunked: "401 unauthorized" },
      { path: "/v1/gallery/import", headers: { ...ndjson, ...keyed }, declared: "403 insufficient_scope", chunked: "403 insufficient_scope" },
      { path: "/v1/search", headers: { ...json, ...keyed }, declared: "413 body_too_large", chunked: "413 body_too_large" },
    ];
    const baseline = rssMb(server.pid);
    let peak = baseline;
    const outcomes = await sampledWhile(
      (async () => {
        const seen: string[] = [];
        for (const { path, headers } of cases) {
          const declared = await declaredBody(server.url, path, headers, FLOOD);
          seen.push(`${declared.status} ${/"error":"(\w+)"/.exec(declared.text)?.[1]}`);
          const body = flood(FLOOD, path === "/v1/search" ? 0x20 : 0);
          const response = await fetch(`${server.url}${path}`, { method: "POST", body: body.body, headers });
          body.stop();
          const { error } = (await response.json()) as { error: string };
          seen.push(`${response.status} ${error}`);
          // Answered early: what had left this process by then, buffers on both sides of loopback included (8 to 20 MB seen).
          expect(body.sent()).toBeLessThanOrEqual(64 * 1024 * 1024);
        }
        return seen;
      })(),
      () => (peak = Math.max(peak, rssMb(server.pid))),
    );
    expect(outcomes).toEqual(cases.flatMap(({ declared, chunked }) => [declared, chunked]));
    console.log(`web process RSS under 200 MB bodies refused early: ${baseline.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB`);
    expect(peak - baseline).toBeLessThan(50);
  });

  test("an admin's import of 50 MB in one chunked request (past the server's whole-body backstop before maxImportBytes): every line imported", async () => {
    // 250 lines of 200 KB each (a 4-d face and blanks, which JSON allows), under the import's line bound.
    const text = Array.from({ length: 250 }, (_, i) => `${JSON.stringify({ subject: `bulk-${i}`, embedding: [1, 0, 0, 0] })}${" ".repeat(200_000)}\n`).join("");
    expect(text.length).toBeGreaterThan(2 * BODY_BOUND + 1024 * 1024);
    const bytes = new TextEncoder().encode(text);
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.length) return controller.close();
        controller.enqueue(bytes.subarray(at, (at += 1024 * 1024)));
      },
    });
    const response = await fetch(`${server.url}/v1/gallery/import`, { method: "POST", body, headers: { authorization: "Bearer t", "content-type": "application/x-ndjson" } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ imported: 250, refused: 0, errors: [] });
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

/**
 * A POST over a connection of its own from `from` (any 127.x.y.z: Linux answers the whole loopback /8), so that the
 * server sees another client address. With `trickle`, the body (a multipart head, then JPEG bytes) comes 10 bytes every
 * 200 ms and never ends; otherwise `body` is sent whole. `answer` is the status and the raw answer (status 0: the
 * connection closed without one).
 */
function rawPost(url: string, from: string, path: string, headers: Record<string, string>, body: Uint8Array | { trickle: Uint8Array }) {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port), localAddress: from });
  let received = "";
  let ticker: ReturnType<typeof setInterval> | undefined;
  const answer = new Promise<{ status: number; text: string }>((resolve) => {
    const settle = () => {
      clearInterval(ticker);
      const status = /^HTTP\/1\.1 (\d{3})/.exec(received);
      resolve({ status: status ? Number(status[1]) : 0, text: received });
    };
    socket.on("data", (chunk) => {
      received += chunk.toString();
      const [head, rest] = received.split("\r\n\r\n", 2);
      const length = /content-length: (\d+)/i.exec(head ?? "");
      if (rest !== undefined && length && Buffer.byteLength(rest) >= Number(length[1])) settle();
    });
    socket.on("close", settle);
    socket.on("error", () => {});
  });
  socket.on("connect", () => {
    const lengthHeader = "trickle" in body ? "transfer-encoding: chunked" : `content-length: ${body.byteLength}`;
    const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
    socket.write(`POST ${path} HTTP/1.1\r\nhost: ${hostname}\r\n${head}${lengthHeader}\r\n\r\n`);
    if (!("trickle" in body)) return void socket.write(body);
    const bytes = Buffer.concat([partHead("slow.jpg"), body.trickle]);
    let offset = 0;
    ticker = setInterval(() => {
      const piece = bytes.subarray(offset, offset + 10);
      offset += 10;
      if (piece.length > 0) socket.write(`${piece.length.toString(16)}\r\n${piece.toString("latin1")}\r\n`, "latin1");
    }, 200);
  });
  return {
    answer,
    close() {
      clearInterval(ticker);
      socket.destroy();
    },
  };
}

const anonymousUpload = async (name: string) => {
  const form = new FormData();
  form.append("inputFile", new File([await noiseJpeg(64, 64)], `${name}.jpg`, { type: "image/jpeg" }));
  return form;
};

/** A whole multipart body and its content type, to send over a raw connection. */
async function multipartBytes(form: FormData): Promise<{ bytes: Uint8Array; type: string }> {
  const encoded = new Response(form);
  // Read before the body: Bun's Response forgets the type once its FormData body is read.
  const type = encoded.headers.get("content-type")!;
  return { bytes: new Uint8Array(await encoded.arrayBuffer()), type };
}

async function waitForHealth(server: UploadServer, wanted: Record<string, number>): Promise<void> {
  for (let tries = 0; tries < 100; tries++) {
    const health = await server.health();
    if (Object.entries(wanted).every(([key, value]) => health[key] === value)) return;
    await Bun.sleep(50);
  }
  expect(await server.health()).toMatchObject(wanted);
}

describe("slow anonymous bodies do not starve the authenticated API (no minimum rate, so they hold their slots)", () => {
  let server: UploadServer;
  beforeAll(async () => {
    server = await startUploadServer({ FACEFLEET_MIN_BODY_RATE: "0", FACEFLEET_GALLERY_BUCKET: "uploads-in-bucket" });
  });
  afterAll(() => server?.stop());

  test("20 trickling POST / from 20 addresses hold every open slot; an enrollment is still answered at once", async () => {
    const jpeg = await noiseJpeg(200, 200);
    const slow = Array.from({ length: 20 }, (_, i) => rawPost(server.url, `127.0.0.${10 + i}`, "/", MULTIPART, { trickle: jpeg }));
    try {
      await waitForHealth(server, { uploadsReading: 16, uploadsQueued: 4 });
      const form = new FormData();
      form.append("image", new File([await noiseJpeg(64, 64)], "ada.jpg", { type: "image/jpeg" }));
      const started = performance.now();
      const response = await fetch(`${server.url}/v1/subjects/Ada/faces`, { method: "POST", body: form, headers: { authorization: "Bearer t" }, signal: AbortSignal.timeout(5000) });
      expect(response.status).toBe(201);
      expect(performance.now() - started).toBeLessThan(3000);
    } finally {
      for (const connection of slow) connection.close();
    }
  });
});

describe("fair uploads with the defaults (64 KiB/s after 1 s, 4 bodies per address, no rate limit)", () => {
  let server: UploadServer;
  beforeAll(async () => {
    server = await startUploadServer({});
  });
  afterAll(() => server?.stop());

  test("a trickling body: 408 body_timeout within a few seconds, not at the 30 s deadline; nothing stored", async () => {
    const before = await server.stored();
    const started = performance.now();
    const slow = rawPost(server.url, "127.0.0.50", "/", MULTIPART, { trickle: await noiseJpeg(200, 200) });
    const answer = await Promise.race([slow.answer, Bun.sleep(8000).then(() => ({ status: 0, text: "no answer in 8 s" }))]);
    slow.close();
    expect(answer.status).toBe(408);
    expect(answer.text).toContain('"error":"body_timeout"');
    const seconds = (performance.now() - started) / 1000;
    expect(seconds).toBeGreaterThan(1.5);
    expect(seconds).toBeLessThan(5);
    expect(await server.stored()).toBe(before);
    await waitForHealth(server, { uploadsReading: 0, uploadsQueued: 0 });
  });

  test("no rate limit on the classic route by default: 30 requests at once from one address, all answered", async () => {
    const answers = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const response = await fetch(`${server.url}/`, { method: "POST", body: await anonymousUpload(`burst_${i}`) });
        return `${response.status} ${await response.text()}`;
      }),
    );
    expect(answers).toEqual(Array.from({ length: 30 }, (_, i) => `200 burst_${i}:Paul`));
  });
});

describe("one address past its share (2 bodies per address, 4 slots, 2 places to wait, no minimum rate)", () => {
  let server: UploadServer;
  beforeAll(async () => {
    server = await startUploadServer({
      FACEFLEET_MIN_BODY_RATE: "0",
      FACEFLEET_UPLOADS_PER_CLIENT: "2",
      FACEFLEET_CONCURRENT_UPLOADS: "4",
      FACEFLEET_UPLOAD_QUEUE_LENGTH: "2",
    });
  });
  afterAll(() => server?.stop());

  test("its third body waits while another address is served; when it fills the queue, it is answered 429 and the other address still gets a place", async () => {
    const jpeg = await noiseJpeg(200, 200);
    const hog = (n: number) => Array.from({ length: n }, () => rawPost(server.url, "127.0.0.60", "/", MULTIPART, { trickle: jpeg }));
    const slow = hog(3);
    try {
      await waitForHealth(server, { uploadsReading: 2, uploadsQueued: 1 });
      const served = await fetch(`${server.url}/`, { method: "POST", body: await anonymousUpload("other"), signal: AbortSignal.timeout(5000) });
      expect(`${served.status} ${await served.text()}`).toBe("200 other:Paul");

      // Another address reads its two, so the slots are full: the hog's next one waits, and fills the queue.
      slow.push(...Array.from({ length: 2 }, () => rawPost(server.url, "127.0.0.61", "/", MULTIPART, { trickle: jpeg })));
      await waitForHealth(server, { uploadsReading: 4, uploadsQueued: 1 });
      slow.push(...hog(1));
      await waitForHealth(server, { uploadsReading: 4, uploadsQueued: 2 });
      const [turnedAway] = hog(1);
      expect((await turnedAway!.answer).status).toBe(429);
      const { bytes, type } = await multipartBytes(await anonymousUpload("newcomer"));
      const newcomer = rawPost(server.url, "127.0.0.62", "/", { "content-type": type }, bytes);
      const evicted = await Promise.race([slow.at(-1)!.answer, Bun.sleep(3000).then(() => ({ status: 0, text: "" }))]);
      expect(evicted.status).toBe(429);
      expect(evicted.text).toContain('"error":"too_many_uploads"');
      turnedAway!.close();
      for (const connection of slow) connection.close();
      expect((await newcomer.answer).text).toEndWith("newcomer:Paul");
      newcomer.close();
    } finally {
      for (const connection of slow) connection.close();
    }
  });
});

describe("the classic route's rate limit per address (FACEFLEET_CLASSIC_RATE_LIMIT=1)", () => {
  for (const trustProxy of [false, true]) {
    describe(trustProxy ? "behind a trusted proxy: the address it appended to X-Forwarded-For" : "X-Forwarded-For not trusted: the peer's address", () => {
      let server: UploadServer;
      beforeAll(async () => {
        server = await startUploadServer({ FACEFLEET_CLASSIC_RATE_LIMIT: "1", ...(trustProxy ? { FACEFLEET_TRUST_PROXY: "true" } : {}) });
      });
      afterAll(() => server?.stop());

      test("a second request within the second: 429 rate_limited with Retry-After; another address is served", async () => {
        const send = async (name: string, forwardedFor: string) => {
          const response = await fetch(`${server.url}/`, { method: "POST", body: await anonymousUpload(name), headers: { "x-forwarded-for": forwardedFor } });
          return { status: response.status, text: await response.text(), retryAfter: response.headers.get("retry-after") };
        };
        expect(await send("first", "203.0.113.1")).toMatchObject({ status: 200, text: "first:Paul" });
        const limited = await send("second", "198.51.100.7, 203.0.113.1");
        expect(limited).toMatchObject({ status: 429, retryAfter: "1" });
        expect(JSON.parse(limited.text)).toMatchObject({ error: "rate_limited" });
        // Another address: over the proxy, another last entry; without one, another connection's peer.
        const other = trustProxy
          ? await send("other", "203.0.113.1, 203.0.113.2")
          : await (async () => {
              const { bytes, type } = await multipartBytes(await anonymousUpload("other"));
              const { status, text } = await rawPost(server.url, "127.0.0.70", "/", { "content-type": type, "x-forwarded-for": "203.0.113.1" }, bytes).answer;
              return { status, text: text.split("\r\n\r\n")[1] };
            })();
        expect(other).toMatchObject({ status: 200, text: "other:Paul" });
      });
    });
  }
});
