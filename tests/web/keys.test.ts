// Recognition keys: made, listed and revoked by the admin; a key may recognize and nothing else; only its hash is
// stored; a revoked key is refused at once by the process that revoked it, and within the refresh bound elsewhere.
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localCloud } from "../../roles/cloud/index.ts";
import { loadConfig, resourceNames } from "../../roles/config.ts";
import type { RoleContext } from "../../roles/context.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";
import { imageInspector } from "../../roles/start.ts";
import { apiTokenFile } from "../../roles/web/api-token.ts";
import { startWebRole } from "../../roles/web/index.ts";
import { API_KEYS_KEY } from "../../roles/deployment.ts";
import { ApiKeyStore, MAX_KEYS } from "../../roles/web/api-key-store.ts";
import { recognitionKeyMay, RECOGNITION_KEY_ROUTES } from "../../roles/web/key-scope.ts";
import { onLocalAndS3Buckets } from "../cloud/clouds.ts";
import { waitFor } from "../support/waiting.ts";
import { AUTH, captureLogs, faceReport, facesResult, multipart, request, startWebHarness, testImages, type WebHarness } from "./support.ts";

// The S3 half runs against the emulated region: seconds on a loaded machine.
setDefaultTimeout(30_000);

let images: Awaited<ReturnType<typeof testImages>>;
beforeAll(async () => {
  images = await testImages();
});

let harness: WebHarness | undefined;
afterEach(async () => {
  await harness?.stop();
  harness = undefined;
});

/** Everyone is Paul; a faces job answers one face. */
const start = (options: { keyRefreshMs?: number } = {}) =>
  startWebHarness({
    ...options,
    answer: (job) =>
      job.kind === "faces"
        ? {
            ok: true,
            jobId: job.jobId,
            result: facesResult([faceReport([{ subject: "Paul", similarity: 0.95 }])], {
              ...(job.faces?.embedding ? { embedding: "AACAPwAAAAAAAAAAAAAAAA==" } : {}),
              ...(job.faces?.subject ? { subjectSimilarity: 1 } : {}),
            }),
          }
        : job.kind === "recognize"
          ? { ok: true, jobId: job.jobId, person: "Paul", faces: 1 }
          : job.kind === "search"
            ? { ok: true, jobId: job.jobId, result: { candidates: [{ subject: "Paul", similarity: 1 }] } }
            : { ok: true, jobId: job.jobId, faces: 1, embeddingKey: `embeddings/${job.jobId}.f32` },
  });

const call = (method: string, path: string, headers: Record<string, string>, body?: FormData | object) =>
  harness!.app.handle(
    request(path, {
      method,
      headers: body && !(body instanceof FormData) ? { ...headers, "content-type": "application/json" } : headers,
      body: body instanceof FormData ? body : body ? JSON.stringify(body) : undefined,
    }),
  );

async function createKey(name = "kiosk"): Promise<{ id: string; key: string; bearer: Record<string, string> }> {
  const response = await call("POST", "/v1/keys", AUTH, { name });
  expect(response.status).toBe(201);
  const body = (await response.json()) as { id: string; name: string; key: string; createdAt: string };
  expect(body).toEqual({ id: expect.stringMatching(/^[0-9a-f]{12}$/), name, createdAt: expect.any(String), key: expect.stringMatching(/^ffk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/) });
  expect(body.key.startsWith(`ffk_${body.id}_`)).toBe(true);
  return { id: body.id, key: body.key, bearer: { authorization: `Bearer ${body.key}` } };
}

async function expectError(response: Response, status: number, error: string): Promise<void> {
  expect(response.status).toBe(status);
  expect(await response.json()).toEqual({ error, message: expect.any(String), requestId: expect.any(String) });
}

describe("recognition keys over HTTP", () => {
  test("a key may recognize, detect, verify and search", async () => {
    harness = await start();
    await harness.gallery.enrollFromKey("Paul", await storedEmbedding(harness), { createdAt: "2026-01-01T00:00:00Z", source: "p.jpg" });
    const { bearer } = await createKey();
    const recognized = await call("POST", "/v1/recognize", bearer, multipart("image", images.jpeg, "q.jpg"));
    expect(recognized.status).toBe(200);
    expect(((await recognized.json()) as { faces: { match: unknown }[] }).faces[0]!.match).toEqual({ subject: "Paul", similarity: 0.95 });
    expect((await call("POST", "/v1/detect", bearer, multipart("image", images.jpeg, "q.jpg"))).status).toBe(200);
    const pair = new FormData();
    pair.append("image1", new File([images.jpeg], "a.jpg", { type: "image/jpeg" }));
    pair.append("image2", new File([images.jpeg], "b.jpg", { type: "image/jpeg" }));
    expect((await call("POST", "/v1/verify", bearer, pair)).status).toBe(200);
    expect((await call("POST", "/v1/subjects/Paul/verify", bearer, multipart("image", images.jpeg, "q.jpg"))).status).toBe(200);
    expect((await call("POST", "/v1/search", bearer, { embedding: [1, 0, 0, 0] })).status).toBe(200);
  });

  test("everything else gets 403 insufficient_scope, before the body is read: enrollment, deletion, rename, listing, key management", async () => {
    harness = await start();
    const { id, bearer } = await createKey();
    const refused: [string, string, (FormData | object)?][] = [
      ["POST", "/v1/subjects/Paul/faces", multipart("image", images.jpeg, "p.jpg")],
      ["DELETE", "/v1/subjects/Paul"],
      ["DELETE", "/v1/subjects/Paul/faces/f1"],
      ["PATCH", "/v1/subjects/Paul", { name: "Peter" }],
      ["GET", "/v1/subjects"],
      ["GET", "/v1/subjects/Paul"],
      ["POST", "/v1/keys", { name: "another" }],
      ["GET", "/v1/keys"],
      ["DELETE", `/v1/keys/${id}`],
    ];
    for (const [method, path, body] of refused) {
      const response = await call(method, path, bearer, body);
      expect(`${method} ${path} ${response.status}`).toBe(`${method} ${path} 403`);
      expect(response.headers.get("www-authenticate")).toBe('Bearer realm="facefleet", error="insufficient_scope"');
      expect(((await response.json()) as { error: string }).error).toBe("insufficient_scope");
    }
    // Near misses of the routes a key may call are no route at all: refused before routing or not found, never served.
    const nearMisses: [string, string][] = [
      ["GET", "/v1/recognize"],
      ["POST", "/v1/recognize/"],
      ["POST", "/v1/subjects//verify"],
      ["POST", "/v1/subjects/Paul/verify/faces"],
    ];
    for (const [method, path] of nearMisses) expect([400, 404]).toContain((await call(method, path, bearer)).status);
    expect(harness.jobsTaken).toHaveLength(0);
    expect(harness.gallery.list()).toEqual([]);
    expect(harness.keys.list().map((key) => key.id)).toEqual([id]);
    // The admin token still opens them.
    expect((await call("GET", "/v1/keys", AUTH)).status).toBe(200);
  });

  test("the classic POST / under FACEFLEET_CLASSIC_AUTH takes a key too", async () => {
    harness = await startWebHarness({ classicAuth: true });
    const { bearer } = await createKey();
    const response = await call("POST", "/", bearer, multipart("inputFile", images.jpeg, "test_00.jpg"));
    expect(await response.text()).toBe("test_00:Paul");
    expect((await call("POST", "/", {}, multipart("inputFile", images.jpeg, "test_00.jpg"))).status).toBe(401);
  });

  test("the list shows ids, names and times, never a key or its hash; last use is recorded", async () => {
    harness = await start();
    const { id, key } = await createKey("front desk");
    const { key: other } = await createKey("gate");
    await call("POST", "/v1/search", { authorization: `Bearer ${key}` }, { embedding: [1, 0, 0, 0] });
    const response = await call("GET", "/v1/keys", AUTH);
    const text = await response.text();
    for (const secret of [key, other, hashOf(key), hashOf(other), key.slice(17)]) expect(text).not.toContain(secret);
    const listed = (JSON.parse(text) as { keys: { id: string; name: string; lastUsedAt: string | null }[] }).keys;
    expect(listed.map(({ name }) => name).sort()).toEqual(["front desk", "gate"]);
    expect(listed.find((entry) => entry.id === id)!.lastUsedAt).toEqual(expect.any(String));
    expect(listed.find((entry) => entry.id !== id)!.lastUsedAt).toBeNull();
  });

  test("only the SHA-256 of a key is stored, never the key or its secret part", async () => {
    harness = await start();
    const { id, key } = await createKey();
    const stored = new TextDecoder().decode((await harness.inBucket.get(API_KEYS_KEY))!);
    expect(JSON.parse(stored)).toEqual({ keys: [{ id, name: "kiosk", sha256: hashOf(key), createdAt: expect.any(String) }] });
    expect(stored).not.toContain(key.slice(`ffk_${id}_`.length));
    expect(harness.logs.lines.map((line) => JSON.stringify(line)).join("\n")).not.toContain(key.slice(`ffk_${id}_`.length));
  });

  test("a revoked key gets 401 invalid_token on the next request; revoking again is 404 unknown_key", async () => {
    harness = await start();
    const { id, bearer } = await createKey();
    const { bearer: kept } = await createKey("kept");
    expect((await call("POST", "/v1/search", bearer, { embedding: [1, 0, 0, 0] })).status).toBe(200);
    expect(await (await call("DELETE", `/v1/keys/${id}`, AUTH)).json()).toEqual({ id, revoked: true });
    const refused = await call("POST", "/v1/search", bearer, { embedding: [1, 0, 0, 0] });
    expect(refused.headers.get("www-authenticate")).toBe('Bearer realm="facefleet", error="invalid_token"');
    await expectError(refused, 401, "unauthorized");
    expect((await call("POST", "/v1/search", kept, { embedding: [1, 0, 0, 0] })).status).toBe(200);
    await expectError(await call("DELETE", `/v1/keys/${id}`, AUTH), 404, "unknown_key");
  });

  test("forged keys: a known id with another secret, a key cut or extended, another key's id: 401", async () => {
    harness = await start();
    const { id, key } = await createKey();
    const { id: otherId } = await createKey("other");
    const secret = key.slice(`ffk_${id}_`.length);
    const flipped = `${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`;
    for (const forged of [`ffk_${id}_${flipped}`, key.slice(0, -1), `${key}A`, `ffk_${otherId}_${secret}`, `FFK_${id}_${secret}`, `ffk_${id.toUpperCase()}_${secret}`, createHash("sha256").update(key).digest("hex")]) {
      await expectError(await call("POST", "/v1/search", { authorization: `Bearer ${forged}` }, { embedding: [1, 0, 0, 0] }), 401, "unauthorized");
    }
  });

  test("bad requests to the key routes: 400 with a code, nothing stored", async () => {
    harness = await start();
    for (const body of [{}, { name: "" }, { name: "x".repeat(65) }, { name: "line\nbreak" }, { name: 7 }, { name: "lone \ud800 surrogate" }, { name: "\udc00" }, { name: "invoice\u202egpj.exe" }, { name: "isolate\u2066" }, { name: "c1\u0085" }, { name: "bom\ufeff" }]) {
      await expectError(await call("POST", "/v1/keys", AUTH, body), 400, "invalid_body");
    }
    // Only a JSON body, never one read as a form: 415, with the right words; JSON that is not: 400 unreadable_body.
    const form = new FormData();
    form.set("name", "scanner");
    const raw = (type: string | undefined, body: string) => harness!.app.handle(request("/v1/keys", { method: "POST", headers: type ? { ...AUTH, "content-type": type } : AUTH, body }));
    for (const response of [await call("POST", "/v1/keys", AUTH, form), await raw("text/plain", '{"name":"scanner"}'), await raw("application/x-www-form-urlencoded", "name=scanner"), await raw(undefined, '{"name":"scanner"}')]) {
      await expectError(response, 415, "unsupported_media_type");
    }
    expect(((await (await raw("text/plain", '{"name":"scanner"}')).json()) as { message: string }).message).toBe("the body must be application/json");
    await expectError(await raw("application/json", '{"name":'), 400, "unreadable_body");
    await expectError(await call("DELETE", "/v1/keys/not-an-id", AUTH), 400, "invalid_parameter");
    await expectError(await call("DELETE", "/v1/keys/0123456789ab", AUTH), 404, "unknown_key");
    expect(await harness.inBucket.get(API_KEYS_KEY)).toBeUndefined();
    await expectError(await call("GET", "/v1/keys", {}), 401, "unauthorized");
    // Letters of any script, and emoji (a surrogate pair), are names.
    for (const name of ["José's scanner", "王小明", "محمد", "kiosk 👍🏽"]) expect((await call("POST", "/v1/keys", AUTH, { name })).status).toBe(201);
  });
});

describe("embedded mode", () => {
  test("keys live in the data directory, hashed, mode 0600, and outlive a restart; the file's admin token manages them", async () => {
    const config = loadConfig({}, { host: "127.0.0.1", port: 0, dataDir: mkdtempSync(join(tmpdir(), "facefleet-keys-")) });
    const context = (): RoleContext => ({ config, names: resourceNames(config), cloud: localCloud(config, async () => ({ stop: async () => {} })), log: captureLogs().logger, metrics: new ServiceMetrics() });
    const start = () => startWebRole(context(), { inspect: imageInspector(40_000_000), tokenSource: "data-dir" });
    let web = await start();
    try {
      const url = `http://127.0.0.1:${web.port}`;
      const admin = { authorization: `Bearer ${readFileSync(apiTokenFile(config.dataDir), "utf8").trim()}`, "content-type": "application/json" };
      const created = (await (await fetch(`${url}/v1/keys`, { method: "POST", headers: admin, body: JSON.stringify({ name: "kiosk" }) })).json()) as { id: string; key: string };
      const search = (base: string) => fetch(`${base}/v1/search`, { method: "POST", headers: { authorization: `Bearer ${created.key}`, "content-type": "application/json" }, body: '{"embedding":[1,0]}' });
      expect((await search(url)).status).toBe(200);
      const file = join(config.dataDir, resourceNames(config).inBucket, encodeURIComponent(API_KEYS_KEY).replaceAll(".", "%2E"));
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, "utf8")).toContain(hashOf(created.key));
      expect(readFileSync(file, "utf8")).not.toContain(created.key.slice(17));
      await web.stop();
      web = await start();
      const again = `http://127.0.0.1:${web.port}`;
      expect((await search(again)).status).toBe(200);
      expect((await fetch(`${again}/v1/keys/${created.id}`, { method: "DELETE", headers: admin })).status).toBe(200);
      expect((await search(again)).status).toBe(401);
    } finally {
      await web.stop();
    }
  });
});

onLocalAndS3Buckets("the key store", (bucket) => {
  test("only the SHA-256 is stored; a revoked key is refused by the process that revoked it as soon as it returns", async () => {
    const shared = await bucket();
    const store = await ApiKeyStore.open(shared, captureLogs().logger);
    try {
      const { key, summary } = await store.create("kiosk");
      const stored = new TextDecoder().decode((await shared.get(API_KEYS_KEY))!);
      expect(JSON.parse(stored)).toEqual({ keys: [{ id: summary.id, name: "kiosk", sha256: hashOf(key), createdAt: summary.createdAt }] });
      expect(stored).not.toContain(key.slice(`ffk_${summary.id}_`.length));
      expect(store.verify(key)).toBe(summary.id);
      expect(await store.revoke(summary.id)).toBe(true);
      expect(store.verify(key)).toBeUndefined();
      expect(JSON.parse(new TextDecoder().decode((await shared.get(API_KEYS_KEY))!))).toEqual({ keys: [] });
    } finally {
      store.stop();
    }
  });

  test("a key revoked by another process is refused here within the refresh bound", async () => {
    const shared = await bucket();
    const here = await ApiKeyStore.open(shared, captureLogs().logger, 50);
    const there = await ApiKeyStore.open(shared, captureLogs().logger, 50);
    try {
      const { key, summary } = await there.create("kiosk");
      await waitFor("the new key here", () => here.verify(key), 2_000);
      await there.revoke(summary.id);
      expect(there.verify(key)).toBeUndefined();
      const revokedAt = Date.now();
      await waitFor("the revocation here", () => (here.verify(key) === undefined ? true : undefined), 2_000);
      expect(Date.now() - revokedAt).toBeLessThan(1_000);
    } finally {
      here.stop();
      there.stop();
    }
  });

  test("two writers at once lose neither key", async () => {
    const shared = await bucket();
    const [first, second] = await Promise.all([ApiKeyStore.open(shared, captureLogs().logger), ApiKeyStore.open(shared, captureLogs().logger)]);
    try {
      const made = await Promise.all([...Array.from({ length: 5 }, (_, i) => first.create(`a${i}`)), ...Array.from({ length: 5 }, (_, i) => second.create(`b${i}`))]);
      await first.refresh();
      expect(first.list().map((key) => key.id).sort()).toEqual(made.map(({ summary }) => summary.id).sort());
      for (const { key } of made) expect(first.verify(key)).toBeDefined();
    } finally {
      first.stop();
      second.stop();
    }
  });

  test("a stored document that is not the keys: every key refused, the fault logged, the next write replaces it", async () => {
    const shared = await bucket();
    await shared.put(API_KEYS_KEY, '{"keys":[{"id":"0123456789ab","name":"x","sha256":"not-a-hash","createdAt":"now"}]}');
    const logs = captureLogs();
    const store = await ApiKeyStore.open(shared, logs.logger);
    try {
      expect(store.list()).toEqual([]);
      expect(logs.lines).toContainEqual(expect.objectContaining({ event: "api_keys_unreadable" }));
      const { key } = await store.create("fresh");
      expect(store.verify(key)).toBeDefined();
    } finally {
      store.stop();
    }
  });

  test(`at most ${MAX_KEYS} keys`, async () => {
    const shared = await bucket();
    const keys = Array.from({ length: MAX_KEYS }, (_, i) => ({ id: i.toString(16).padStart(12, "0"), name: `k${i}`, sha256: "0".repeat(64), createdAt: "2026-01-01T00:00:00.000Z" }));
    await shared.put(API_KEYS_KEY, JSON.stringify({ keys }));
    const store = await ApiKeyStore.open(shared, captureLogs().logger);
    try {
      expect(store.list()).toHaveLength(MAX_KEYS);
      await expect(store.create("one too many")).rejects.toThrow(/revoke one first/);
    } finally {
      store.stop();
    }
  });
});

describe("which routes a key may call", () => {
  // Route templates, as the guard finds them (templateOf, access.ts); a request path is never looked up here.
  test.each([
    ["POST", "/", true],
    ["POST", "/v1/recognize", true],
    ["POST", "/v1/detect", true],
    ["POST", "/v1/verify", true],
    ["POST", "/v1/search", true],
    ["POST", "/v1/subjects/:name/verify", true],
    ["POST", "/v1/subjects/Paul/verify", false],
    ["POST", "/v1/subjects/:name/faces", false],
    ["GET", "/v1/subjects", false],
    ["GET", "/v1/subjects/:name", false],
    ["PATCH", "/v1/subjects/:name", false],
    ["DELETE", "/v1/subjects/:name", false],
    ["DELETE", "/v1/subjects/:name/faces/:faceId", false],
    ["POST", "/v1/keys", false],
    ["GET", "/v1/keys", false],
    ["DELETE", "/v1/keys/:id", false],
    ["GET", "/v1/recognize", false],
    ["POST", "/v1/recognize/", false],
    ["POST", "/v1/subjects/:other/verify", false],
    ["POST", "/v2/recognize", false],
    ["post", "/v1/recognize", false],
  ])("%s %s: %p", (method, template, may) => {
    expect(recognitionKeyMay(method, template)).toBe(may);
  });

  test("every route in the table is one the service serves, by method and template", async () => {
    harness = await startWebHarness();
    const served = new Set(harness.app.routes.map((route) => `${route.method} ${route.path}`));
    for (const { method, template } of RECOGNITION_KEY_ROUTES) expect(served).toContain(`${method} ${template}`);
    await harness.stop();
    harness = undefined;
  });
});

const hashOf = (key: string) => createHash("sha256").update(key).digest("hex");

/** An embedding an app instance left for the web role to take into the gallery. */
async function storedEmbedding(web: WebHarness): Promise<string> {
  const key = "embeddings/paul.f32";
  await web.galleryBucket.put(key, new Uint8Array(new Float32Array([1, 0, 0, 0]).buffer));
  return key;
}
