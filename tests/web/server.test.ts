// The composed HTTP surface over the local stand-ins, with a fake app instance answering jobs: roles/web/README.md's
// "Bad input" paragraph code by code, and nothing stored for any of them. No model, no datasets.
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { AUTH, faceReport, facesResult, multipart, request, startWebHarness, testImages, type WebHarness } from "./support.ts";

let images: Awaited<ReturnType<typeof testImages>>;
beforeAll(async () => {
  images = await testImages();
});

let harness: WebHarness | undefined;
afterEach(async () => {
  await harness?.stop();
  harness = undefined;
});

const post = (body: FormData | string, headers: Record<string, string> = {}) => harness!.app.handle(request("/", { method: "POST", body, headers }));

async function expectError(response: Response, status: number, error: string): Promise<Record<string, unknown>> {
  expect(response.status).toBe(status);
  const body = (await response.json()) as Record<string, unknown>;
  expect(body).toEqual({ error, message: expect.any(String), requestId: response.headers.get("x-request-id")! });
  return body;
}

async function expectNothingStored(): Promise<void> {
  expect(await harness!.inBucket.count()).toBe(0);
  expect(await harness!.requestQueue.depth()).toEqual({ visible: 0, inFlight: 0 });
  expect(harness!.jobsTaken).toHaveLength(0);
  expect(harness!.gallery.list()).toEqual([]);
}

describe("web server", () => {
  test("the classic contract through the queue: the image is stored under the request id, the answer is <name>:<person>", async () => {
    harness = await startWebHarness();
    const response = await post(multipart("inputFile", images.jpeg, "test_00.jpg"));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await response.text()).toBe("test_00:Paul");
    const id = response.headers.get("x-request-id")!;
    expect(harness.jobsTaken).toEqual([expect.objectContaining({ kind: "recognize", jobId: id, inputKey: `${id}/test_00.jpg`, name: "test_00" })]);
    expect(await harness.inBucket.get(`${id}/test_00.jpg`)).toEqual(images.jpeg);
  });

  test("enrollment through the queue: the embedding the app left is enrolled, then removed", async () => {
    harness = await startWebHarness();
    const response = await harness.app.handle(
      request("/v1/subjects/Paul/faces", { method: "POST", body: multipart("image", images.webp, "p.webp", "image/webp"), headers: AUTH }),
    );
    expect(response.status).toBe(201);
    expect(await response.json()).toMatchObject({ subject: "Paul", faces: 1 });
    expect(harness.gallery.list()).toEqual([{ subject: "Paul", faces: 1 }]);
    expect(await harness.galleryBucket.get(`embeddings/${response.headers.get("x-request-id")}.f32`)).toBeUndefined();
  });

  test("read your writes: a job sent after an enrollment was answered carries the gallery version that holds it", async () => {
    harness = await startWebHarness();
    expect((await post(multipart("inputFile", images.jpeg, "before.jpg"))).status).toBe(200);
    const enrolled = await harness.app.handle(request("/v1/subjects/Paul/faces", { method: "POST", body: multipart("image", images.webp, "p.webp", "image/webp"), headers: AUTH }));
    const { faceId } = (await enrolled.json()) as { faceId: string };
    expect((await post(multipart("inputFile", images.jpeg, "after.jpg"))).status).toBe(200);
    const [before, enrollment, after] = harness.jobsTaken;
    expect(enrollment!.kind).toBe("embed");
    // A face's id is the sequence number of the change that enrolled it.
    expect(after!.galleryVersion).toBeGreaterThanOrEqual(Number(faceId.slice(1)));
    expect(before!.galleryVersion).toBeLessThan(Number(faceId.slice(1)));
  });

  test("/v1/recognize through the queue, its result too large for the reply: read from the output bucket, then removed", async () => {
    const result = facesResult(Array.from({ length: 8 }, (_, i) => faceReport([{ subject: "Paul", similarity: 0.95 }], { x: i * 40, y: 0, width: 40 - i, height: 40 - i })));
    harness = await startWebHarness({
      answer: async (job, buckets) => {
        await buckets.out.put(`api/${job.jobId}.json`, JSON.stringify(result));
        return { ok: true, jobId: job.jobId, resultKey: `api/${job.jobId}.json` };
      },
    });
    const response = await harness.app.handle(request("/v1/recognize", { method: "POST", body: multipart("image", images.jpeg, "group.jpg"), headers: AUTH }));
    expect(response.status).toBe(200);
    const body = (await response.json()) as { faces: { match: unknown }[] };
    expect(body.faces).toHaveLength(8);
    expect(body.faces[0]!.match).toEqual({ subject: "Paul", similarity: 0.95 });
    expect(harness.jobsTaken[0]).toMatchObject({ kind: "faces", faces: { k: 3, maxFaces: 20, minScore: 0, embedding: false } });
    expect(await harness.outBucket.count()).toBe(0);
  });

  test("a search through the queue: the normalised embedding stored under the request id for the job, which carries the gallery's version; a large result read from the output bucket; nothing kept", async () => {
    const inputs: { key: string; values: number[] }[] = [];
    const names = Array.from({ length: 12 }, (_, i) => ({ subject: `${"ü".repeat(90)}-${i}`, similarity: 0.5 }));
    harness = await startWebHarness({
      answer: async (job, buckets) => {
        if (job.kind === "embed") return { ok: true, jobId: job.jobId, faces: 1, embeddingKey: `embeddings/${job.jobId}.f32` };
        const bytes = (await harness!.inBucket.get(job.inputKey))!;
        inputs.push({ key: job.inputKey, values: Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))) });
        await buckets.out.put(`api/${job.jobId}.json`, JSON.stringify({ candidates: names }));
        return { ok: true, jobId: job.jobId, resultKey: `api/${job.jobId}.json` };
      },
    });
    expect((await harness.app.handle(request("/v1/subjects/Paul/faces", { method: "POST", body: multipart("image", images.jpeg, "p.jpg"), headers: AUTH }))).status).toBe(201);
    const response = await harness.app.handle(request("/v1/search", { method: "POST", body: JSON.stringify({ embedding: [0, 3, 0, 4], k: 12 }), headers: { ...AUTH, "content-type": "application/json" } }));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ candidates: names });
    const id = response.headers.get("x-request-id")!;
    expect(inputs).toEqual([{ key: `${id}/embedding.f32`, values: [0, 0.6000000238418579, 0, 0.800000011920929] }]);
    expect(harness.jobsTaken.at(-1)).toMatchObject({ kind: "search", jobId: id, inputKey: `${id}/embedding.f32`, search: { k: 12 }, galleryVersion: harness.gallery.version });
    expect(await harness.outBucket.count()).toBe(0);
    expect(await harness.inBucket.get(`${id}/embedding.f32`)).toBeUndefined();
  });

  test("an enrollment the app refuses (no face): 422, and neither the photo nor an embedding is kept", async () => {
    harness = await startWebHarness({ answer: (job) => ({ ok: false, jobId: job.jobId, error: { code: "no_face", message: "no face found in the photo" } }) });
    const response = await harness.app.handle(request("/v1/subjects/Paul/faces", { method: "POST", body: multipart("image", images.jpeg, "p.jpg"), headers: AUTH }));
    await expectError(response, 422, "no_face");
    expect(harness.jobsTaken).toHaveLength(1);
    expect(await harness.inBucket.count()).toBe(0);
    expect(await harness.galleryBucket.count()).toBe(0);
    expect(harness.gallery.list()).toEqual([]);
  });

  describe("bad input: its code, and nothing stored", () => {
    const cases: [string, () => FormData, number, string][] = [
      ["missing field", () => multipart("somethingElse", images.jpeg, "a.jpg"), 400, "missing_field"],
      ["empty file", () => multipart("inputFile", images.empty, "a.jpg"), 400, "empty_file"],
      ["not an image", () => multipart("inputFile", images.notAnImage, "a.jpg"), 400, "not_an_image"],
      ["truncated", () => multipart("inputFile", images.truncated, "a.jpg"), 400, "truncated"],
      ["GIF", () => multipart("inputFile", images.gif, "a.gif", "image/gif"), 415, "unsupported_format"],
      ["more pixels than the limit", () => multipart("inputFile", images.bomb, "a.png", "image/png"), 413, "too_many_pixels"],
    ];
    for (const [what, form, status, code] of cases) {
      test(what, async () => {
        harness = await startWebHarness();
        await expectError(await post(form()), status, code);
        await expectNothingStored();
      });
    }

    test("truncated past its header: the app instance's decode refuses it, 400 truncated, and its stored image is removed", async () => {
      harness = await startWebHarness();
      await expectError(await post(multipart("inputFile", images.truncatedAfterHeader, "cut.jpg")), 400, "truncated");
      expect(harness.jobsTaken).toHaveLength(1);
      expect(await harness.inBucket.count()).toBe(0);
    });

    test("over the upload limit: refused from content-length, before the body is read", async () => {
      harness = await startWebHarness({ limits: { maxFileBytes: 1024 } });
      let pulled = 0;
      const body = new ReadableStream({
        pull(controller) {
          pulled++;
          controller.enqueue(new Uint8Array(64 * 1024));
          if (pulled > 4) controller.close();
        },
      });
      const response = await post(body as unknown as string, { "content-type": "multipart/form-data; boundary=x", "content-length": String(5 * 64 * 1024) });
      await expectError(response, 413, "file_too_large");
      expect(pulled).toBeLessThanOrEqual(1);
      await expectNothingStored();
    });
  });

  test("nobody enrolled: 409 no_subjects_enrolled, as the app instance answered", async () => {
    harness = await startWebHarness({
      answer: (job) => ({ ok: false, jobId: job.jobId, error: { code: "no_subjects_enrolled", message: "nobody is enrolled yet" } }),
    });
    await expectError(await post(multipart("inputFile", images.jpeg, "a.jpg")), 409, "no_subjects_enrolled");
  });

  test("a job set aside after failing on every try: 500 job_failed without its reason, which is logged under the request id", async () => {
    const reason =
      "the job failed 3 times and was set aside: User: arn:aws:sts::123456789012:assumed-role/facefleet-app/i-0abc is not authorized to perform: s3:GetObject";
    harness = await startWebHarness({ answer: (job) => ({ ok: false, jobId: job.jobId, error: { code: "job_failed", message: reason } }) });
    const response = await post(multipart("inputFile", images.jpeg, "a.jpg"));
    const body = await expectError(response, 500, "job_failed");
    expect(JSON.stringify(body)).not.toContain("arn:");
    const logged = harness.logs.lines.find((line) => line.event === "request_failed");
    expect(logged).toMatchObject({ requestId: body.requestId, code: "job_failed" });
    expect(JSON.stringify(logged)).toContain(reason);
  });

  test("no reply in time: 504 timeout with the request id", async () => {
    harness = await startWebHarness({ timeoutMs: 50, answer: async (job) => (await Bun.sleep(300), { ok: true, jobId: job.jobId, person: "Late", faces: 1 }) });
    await expectError(await post(multipart("inputFile", images.jpeg, "a.jpg")), 504, "timeout");
  });

  test("a reply of the wrong shape for its kind is a fault, not an answer", async () => {
    // An embed job answered like a recognition (no embeddingKey): the reply schema of the kind refuses it.
    harness = await startWebHarness({ answer: (job) => ({ ok: true, jobId: job.jobId, person: "Paul", faces: 1 }) });
    const response = await harness.app.handle(
      request("/v1/subjects/Paul/faces", { method: "POST", body: multipart("image", images.jpeg, "a.jpg"), headers: AUTH }),
    );
    await expectError(response, 500, "internal_error");
    expect(harness.gallery.list()).toEqual([]);
  });

  describe("a reply naming an object that is not its own job's: a fault; the object is neither read, taken nor deleted", () => {
    test("a faces result under another key of the output bucket", async () => {
      for (const key of ["api/another-job.json", "photo", "gallery/gallery.bin"]) {
        harness = await startWebHarness({
          answer: async (job, buckets) => {
            await buckets.out.put(key, JSON.stringify(facesResult([faceReport()])));
            return { ok: true, jobId: job.jobId, resultKey: key };
          },
        });
        const response = await harness.app.handle(request("/v1/detect", { method: "POST", body: multipart("image", images.jpeg, "a.jpg"), headers: AUTH }));
        await expectError(response, 500, "internal_error");
        expect(await harness.outBucket.get(key)).toBeDefined();
        await harness.stop();
        harness = undefined;
      }
    });

    test("an enrollment's embedding under another job's key", async () => {
      harness = await startWebHarness({ answer: (job) => ({ ok: true, jobId: job.jobId, faces: 1, embeddingKey: "embeddings/another-job.f32" }) });
      const response = await harness.app.handle(request("/v1/subjects/Paul/faces", { method: "POST", body: multipart("image", images.jpeg, "a.jpg"), headers: AUTH }));
      await expectError(response, 500, "internal_error");
      expect(harness.gallery.list()).toEqual([]);
      expect(await harness.galleryBucket.get("embeddings/another-job.f32")).toBeDefined();
    });
  });

  test("health", async () => {
    harness = await startWebHarness();
    expect(await (await harness.app.handle(request("/healthz"))).json()).toEqual({ status: "ok", role: "web" });
  });
});
