// The subjects API's plugin on its own: a fake job submitter, the real gallery writer over files, no datasets.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileBucket } from "../../roles/cloud/local/file-bucket.ts";
import type { Bucket } from "../../roles/cloud/types.ts";
import { GalleryWriter } from "../../roles/gallery-store.ts";
import { subjectsApi } from "../../roles/web/subjects.ts";
import { AUTH, captureLogs, fakeJobs, guarded, multipart, request, testImages, testUploadReader } from "./support.ts";

let images: Awaited<ReturnType<typeof testImages>>;
beforeAll(async () => {
  images = await testImages();
});

const EMBEDDING = new Uint8Array(new Float32Array([0.6, 0.8, 0, 0]).buffer);

/** The API over a gallery bucket in which every embedding an app instance would leave is already there. */
async function subjects(bucket: Bucket = new FileBucket(mkdtempSync(join(tmpdir(), "facefleet-subjects-")), "gallery")) {
  const logs = captureLogs();
  const { jobs, submitted } = fakeJobs();
  const gallery = await GalleryWriter.open(bucket);
  const embeddingsLeft = (jobId: string) => bucket.put(`embeddings/${jobId}.f32`, EMBEDDING);
  const app = guarded(
    subjectsApi({
      jobs: { ...jobs, submit: async (jobId, kind, upload, options) => (await embeddingsLeft(jobId), jobs.submit(jobId, kind, upload, options)) },
      gallery,
      uploads: testUploadReader({ maxFileBytes: 64 * 1024 }),
    }),
    { log: logs.logger },
  );
  const enroll = (name: string, form: FormData, headers: Record<string, string> = AUTH) =>
    app.handle(request(`/v1/subjects/${name}/faces`, { method: "POST", body: form, headers }));
  return { app, enroll, submitted, bucket, gallery, logs };
}

describe("subjects API", () => {
  test("enroll (201), list, remove (404 for an unknown subject)", async () => {
    const { app, enroll, submitted } = await subjects();
    const response = await enroll("Ada%20Lovelace", multipart("image", images.png, "ada.png", "image/png"));
    expect(response.status).toBe(201);
    expect(await response.json()).toEqual({ subject: "Ada Lovelace", faceId: expect.any(String), faces: 1 });
    expect(submitted.map((s) => s.kind)).toEqual(["embed"]);
    expect(await (await app.handle(request("/v1/subjects", { headers: AUTH }))).json()).toEqual({ subjects: [{ name: "Ada Lovelace", faces: 1 }], page: 1, size: 100, total: 1 });
    expect((await app.handle(request("/v1/subjects/Nobody", { method: "DELETE", headers: AUTH }))).status).toBe(404);
    const removed = await app.handle(request("/v1/subjects/Ada%20Lovelace", { method: "DELETE", headers: AUTH }));
    expect(await removed.json()).toEqual({ subject: "Ada Lovelace", removedFaces: 1 });
    expect(await (await app.handle(request("/v1/subjects", { headers: AUTH }))).json()).toEqual({ subjects: [], page: 1, size: 100, total: 0 });
  });

  test("a removal with ?erase=now leaves no trace of the embedding in storage; without it, the log keeps it until a compaction", async () => {
    const { app, enroll, bucket } = await subjects();
    const storedAnywhere = async () => {
      const everything = Buffer.concat(await Promise.all((await bucket.list("gallery/")).map(async (key) => Buffer.from((await bucket.get(key))!))));
      const raw = Buffer.from(EMBEDDING);
      return everything.includes(raw) || everything.includes(Buffer.from(raw.toString("base64")));
    };
    for (const name of ["Ada", "Bob"]) expect((await enroll(name, multipart("image", images.png, `${name}.png`, "image/png"))).status).toBe(201);
    expect((await app.handle(request("/v1/subjects/Ada", { method: "DELETE", headers: AUTH }))).status).toBe(200);
    expect(await storedAnywhere()).toBe(true);
    expect((await app.handle(request("/v1/subjects/Bob?erase=now", { method: "DELETE", headers: AUTH }))).status).toBe(200);
    expect(await storedAnywhere()).toBe(false);
    expect((await app.handle(request("/v1/subjects/Bob?erase=later", { method: "DELETE", headers: AUTH }))).status).toBe(400);
  });

  test("every route needs the token, checked before anything else about the request", async () => {
    const { app, enroll, submitted, bucket } = await subjects();
    const anonymous: Request[] = [
      request("/v1/subjects"),
      request("/v1/subjects/Paul", { method: "DELETE" }),
      request("/v1/subjects/%20", { method: "DELETE" }), // a name is not even looked at
    ];
    for (const attempt of anonymous) expect((await app.handle(attempt)).status).toBe(401);
    expect((await app.handle(request("/v1/subjects/%00", { method: "DELETE" }))).status).toBe(400); // not canonical: refused before routing
    expect((await enroll("Paul", multipart("image", images.jpeg, "a.jpg"), {})).status).toBe(401);
    expect((await enroll("Paul", multipart("image", images.jpeg, "a.jpg"), { authorization: "Bearer nope" })).status).toBe(401);
    expect(submitted).toHaveLength(0);
    expect(await bucket.count()).toBe(0);
  });

  describe("bad input gets its code and nothing is stored", () => {
    const cases: [string, () => FormData, number, string][] = [
      ["missing field", () => multipart("inputFile", images.jpeg, "a.jpg"), 400, "missing_field"],
      ["empty file", () => multipart("image", images.empty, "a.jpg"), 400, "empty_file"],
      ["not an image", () => multipart("image", images.notAnImage, "a.jpg"), 400, "not_an_image"],
      ["truncated", () => multipart("image", images.truncated, "a.jpg"), 400, "truncated"],
      ["GIF", () => multipart("image", images.gif, "a.gif", "image/gif"), 415, "unsupported_format"],
      ["a file over the limit", () => multipart("image", new Uint8Array(64 * 1024 + 1), "a.jpg"), 413, "file_too_large"],
      ["a decompression bomb's header", () => multipart("image", images.bomb, "a.png", "image/png"), 413, "too_many_pixels"],
    ];
    for (const [what, form, status, code] of cases) {
      test(what, async () => {
        const { enroll, submitted, bucket, gallery } = await subjects();
        const response = await enroll("Paul", form());
        expect(response.status).toBe(status);
        expect(await response.json()).toMatchObject({ error: code });
        expect(submitted).toHaveLength(0);
        expect(await bucket.count()).toBe(0);
        expect(gallery.list()).toEqual([]);
      });
    }
    test("a name with a slash, a backslash or a control character: 400 bad_request before routing; a long one 400 invalid_parameter", async () => {
      const { app, enroll, submitted } = await subjects();
      // A dot segment cannot travel in a path: no subject may be renamed to one either.
      for (const name of [".", "..", "a/b", "a\u007f", "a\u202eb", "lone\ud800", "\udc00", "a\u0085", "a\u2067b", "\ufeffa"]) {
        const renamed = await app.handle(request("/v1/subjects/Paul", { method: "PATCH", body: JSON.stringify({ name }), headers: { ...AUTH, "content-type": "application/json" } }));
        expect(await renamed.json()).toMatchObject({ error: "invalid_body" });
      }
      for (const [name, code] of [["a%2Fb", "bad_request"], ["a%5Cb", "bad_request"], ["a%01b", "bad_request"], ["a".repeat(101), "invalid_parameter"]]) {
        const response = await enroll(name!, multipart("image", images.jpeg, "a.jpg"));
        expect(response.status).toBe(400);
        expect(await response.json()).toMatchObject({ error: code });
      }
      expect(submitted).toHaveLength(0);
    });
  });

  test("a gallery store that fails with an SDK error: 500 with none of its text; it is logged under the request id", async () => {
    const arn = "arn:aws:sts::123456789012:assumed-role/facefleet-web/i-0abc";
    const files = new FileBucket(mkdtempSync(join(tmpdir(), "facefleet-subjects-")), "gallery");
    const failingSaves: Bucket = Object.assign(Object.create(files) as Bucket, {
      putIf: async () => {
        throw Object.assign(new Error(`User: ${arn} is not authorized to perform: s3:PutObject`), { name: "AccessDenied" });
      },
    });
    const { enroll, logs } = await subjects(failingSaves);
    const response = await enroll("Paul", multipart("image", images.jpeg, "a.jpg"));
    expect(response.status).toBe(500);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({ error: "internal_error", message: "internal error", requestId: response.headers.get("x-request-id")! });
    expect(text).not.toContain("arn:");
    const logged = logs.lines.find((line) => line.event === "request_failed");
    expect(logged).toMatchObject({ requestId: response.headers.get("x-request-id"), status: 500 });
    expect(JSON.stringify(logged)).toContain(arn);
  });
});
