// The classic contract's plugin on its own: a fake job submitter, the model's real image inspector, no datasets.
import { beforeAll, describe, expect, test } from "bun:test";
import { classicContract } from "../../roles/web/classic.ts";
import { JobRefusedError } from "../../roles/web/jobs.ts";
import { captureLogs, fakeJobs, guarded, multipart, request, testImages, testUploadReader, TOKEN } from "./support.ts";

let images: Awaited<ReturnType<typeof testImages>>;
beforeAll(async () => {
  images = await testImages();
});

function classic(options: { classicAuth?: boolean; answer?: Parameters<typeof fakeJobs>[0] } = {}) {
  const logs = captureLogs();
  const { jobs, submitted } = fakeJobs(options.answer);
  const app = guarded(classicContract({ jobs, uploads: testUploadReader({ maxFileBytes: 64 * 1024 }), log: logs.logger }), {
    log: logs.logger,
    classicAuth: options.classicAuth ?? false,
  });
  const post = (body: FormData | string, headers: Record<string, string> = {}) => app.handle(request("/", { method: "POST", body, headers }));
  return { app, post, submitted, logs };
}

async function expectError(response: Response, status: number, error: string): Promise<void> {
  expect(response.status).toBe(status);
  const body = (await response.json()) as Record<string, unknown>;
  expect(body).toEqual({ error, message: expect.any(String), requestId: response.headers.get("x-request-id")! });
  expect(body.requestId).toMatch(/^[0-9a-f-]{36}$/);
}

describe("classic contract", () => {
  for (const format of ["jpeg", "png", "webp"] as const) {
    test(`a ${format.toUpperCase()} is answered 200 text/plain <name>:<person>, exactly`, async () => {
      const { post, submitted } = classic();
      const response = await post(multipart("inputFile", images[format], `test_00.${format}`, `image/${format}`));
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("text/plain; charset=utf-8");
      expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
      expect(new Uint8Array(await response.arrayBuffer())).toEqual(new TextEncoder().encode("test_00:Paul"));
      expect(submitted.map((s) => [s.kind, s.jobId, s.upload.name])).toEqual([["recognize", response.headers.get("x-request-id")!, "test_00"]]);
    });
  }

  describe("bad input gets its code and nothing is submitted", () => {
    const cases: [string, () => FormData | string, number, string][] = [
      ["missing field", () => multipart("somethingElse", images.jpeg, "a.jpg"), 400, "missing_field"],
      [
        "field that is not a file",
        () => {
          const form = new FormData();
          form.append("inputFile", "just text");
          return form;
        },
        400,
        "missing_field",
      ],
      ["empty file", () => multipart("inputFile", images.empty, "empty.jpg"), 400, "empty_file"],
      ["not an image", () => multipart("inputFile", images.notAnImage, "notes.jpg"), 400, "not_an_image"],
      ["truncated", () => multipart("inputFile", images.truncated, "cut.jpg"), 400, "truncated"],
      ["GIF", () => multipart("inputFile", images.gif, "a.gif", "image/gif"), 415, "unsupported_format"],
      ["a file over the limit", () => multipart("inputFile", new Uint8Array(64 * 1024 + 1).fill(7), "big.jpg"), 413, "file_too_large"],
      [
        "more pixels than the limit (a decompression bomb's header)",
        () => multipart("inputFile", images.bomb, "bomb.png", "image/png"),
        413,
        "too_many_pixels",
      ],
    ];
    for (const [what, body, status, code] of cases) {
      test(what, async () => {
        const { post, submitted } = classic();
        await expectError(await post(body()), status, code);
        expect(submitted).toHaveLength(0);
      });
    }

    test("a body that is not multipart, or multipart without a boundary, or cut short: 400 unreadable_body", async () => {
      const { post, submitted } = classic();
      await expectError(await post("hello", { "content-type": "text/plain" }), 400, "unreadable_body");
      await expectError(await post("hello", { "content-type": "multipart/form-data; charset=utf-8" }), 400, "unreadable_body");
      const cut = "--b\r\nContent-Disposition: form-data; name=\"inputFile\"; filename=\"a.jpg\"\r\n\r\n";
      await expectError(await post(cut, { "content-type": "multipart/form-data; boundary=b" }), 400, "unreadable_body");
      expect(submitted).toHaveLength(0);
    });
  });

  test("more parts than the form holds (a thousand text fields before the file): 400 too_many_parts at once, not at the body timeout", async () => {
    const { post, submitted } = classic();
    for (const fields of [1000, 100_000]) {
      const form = new FormData();
      for (let i = 0; i < fields; i++) form.append(`f${i}`, "x");
      form.append("inputFile", new File([images.jpeg], "a.jpg", { type: "image/jpeg" }));
      const started = performance.now();
      await expectError(await post(form), 400, "too_many_parts");
      // The test reader's body timeout is 5 s.
      expect(performance.now() - started).toBeLessThan(2_000);
    }
    expect(submitted).toHaveLength(0);
  });

  test("an app instance's refusal keeps its code: nobody enrolled is 409 no_subjects_enrolled", async () => {
    const { post } = classic({
      answer: () => {
        throw new JobRefusedError("no_subjects_enrolled", "nobody is enrolled yet");
      },
    });
    await expectError(await post(multipart("inputFile", images.jpeg, "a.jpg")), 409, "no_subjects_enrolled");
  });

  test("open by default; with classicAuth it needs the bearer token", async () => {
    expect((await classic().post(multipart("inputFile", images.jpeg, "a.jpg"))).status).toBe(200);
    const { post, submitted } = classic({ classicAuth: true });
    await expectError(await post(multipart("inputFile", images.jpeg, "a.jpg")), 401, "unauthorized");
    await expectError(await post(multipart("inputFile", images.jpeg, "a.jpg"), { authorization: "Bearer wrong" }), 401, "unauthorized");
    expect(submitted).toHaveLength(0);
    const response = await post(multipart("inputFile", images.jpeg, "a.jpg"), { authorization: `Bearer ${TOKEN}` });
    expect(await response.text()).toBe("a:Paul");
  });
});
