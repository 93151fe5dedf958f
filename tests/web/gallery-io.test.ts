// Bulk import and export of the gallery as NDJSON over the real writer on files: bad lines refused one by one, the
// rest written as segments that every reader loads, the export the import's own format.
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { GALLERY_SEGMENT_PREFIX } from "../../roles/deployment.ts";
import { GalleryReader, SEGMENT_FACES } from "../../roles/gallery-store.ts";
import { AUTH, multipart, request, startWebHarness, testImages, type WebHarness } from "./support.ts";

let harness: WebHarness | undefined;
let images: Awaited<ReturnType<typeof testImages>>;
beforeAll(async () => {
  images = await testImages();
});
afterEach(async () => {
  await harness?.stop();
  harness = undefined;
});

const line = (value: unknown) => JSON.stringify(value);
const importBody = (body: string, headers: Record<string, string> = AUTH) =>
  harness!.app.handle(request("/v1/gallery/import", { method: "POST", body, headers: { ...headers, "content-type": "application/x-ndjson" } }));
const exported = async () => {
  const response = await harness!.app.handle(request("/v1/gallery/export", { headers: AUTH }));
  expect(response.headers.get("content-type")).toBe("application/x-ndjson");
  return (await response.text()).split("\n").filter((text) => text.length > 0).map((text) => JSON.parse(text) as { subject: string; embedding: number[]; source: string; faceId: string });
};

describe("gallery import and export", () => {
  test("each bad line is refused with its reason and number, the others imported; every reader sees them; the export gives them back", async () => {
    harness = await startWebHarness();
    const body = [
      line({ subject: "Ada", embedding: [3, 4, 0, 0], source: "ada.jpg" }),
      line({ subject: "Ada", embedding: [0, 0, 1, 0] }),
      "",
      line({ subject: "Bob", embedding: [1, 2, 3] }),
      line({ subject: "Bob", embedding: [0, 0, 0, 0] }),
      "{not json",
      line({ subject: "a/b", embedding: [1, 0, 0, 0] }),
      line({ subject: "Bob", embedding: [0, 1, 0, 0], extra: true, source: "bob.png" }),
    ].join("\n");
    const response = await importBody(body);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      imported: 3,
      refused: 4,
      errors: [
        { line: 4, error: "wrong_dimensions", message: "the embedding has 3 dimensions; the gallery's have 4" },
        { line: 5, error: "invalid_embedding", message: "the embedding must be finite and not all zeros" },
        { line: 6, error: "invalid_json", message: "the line is not JSON" },
        { line: 7, error: "invalid_line", message: expect.any(String) },
      ],
    });
    expect(harness.gallery.list()).toEqual([{ subject: "Ada", faces: 2 }, { subject: "Bob", faces: 1 }]);
    expect(await harness.galleryBucket.list(GALLERY_SEGMENT_PREFIX)).toHaveLength(1);
    const reader = await new GalleryReader(harness.galleryBucket).current();
    expect(reader?.list()).toEqual([{ subject: "Ada", faces: 2 }, { subject: "Bob", faces: 1 }]);
    // Ada's template, the mean of her two faces.
    expect(reader?.search(new Float32Array([0.6, 0.8, 1, 0].map((value) => value / Math.SQRT2)), 1)[0]).toMatchObject({ subject: "Ada" });

    const faces = await exported();
    expect(faces.map(({ subject, source }) => [subject, source]).sort()).toEqual([["Ada", ""], ["Ada", "ada.jpg"], ["Bob", "bob.png"]]);
    expect(faces.find((face) => face.source === "ada.jpg")!.embedding.map((value) => Math.round(value * 1e6) / 1e6)).toEqual([0.6, 0.8, 0, 0]);
    // An imported face is a face like any other: removable by its id.
    const bob = faces.find((face) => face.subject === "Bob")!;
    expect((await harness.app.handle(request(`/v1/subjects/Bob/faces/${bob.faceId}?erase=now`, { method: "DELETE", headers: AUTH }))).status).toBe(200);
    expect((await new GalleryReader(harness.galleryBucket).current())?.list()).toEqual([{ subject: "Ada", faces: 2 }]);
  });

  test("an import larger than a segment is written as several; a fresh gallery imports the export and lists the same", async () => {
    harness = await startWebHarness();
    const count = SEGMENT_FACES + 10;
    const body = Array.from({ length: count }, (_, i) => line({ subject: `person-${i % 500}`, embedding: [Math.cos(i), Math.sin(i), 1, 0] })).join("\n");
    expect(await (await importBody(body)).json()).toEqual({ imported: count, refused: 0, errors: [] });
    expect(await harness.galleryBucket.list(GALLERY_SEGMENT_PREFIX)).toHaveLength(2);
    const listed = harness.gallery.list();
    const faces = await exported();
    expect(faces).toHaveLength(count);
    expect(new Set(faces.map(({ faceId }) => faceId)).size).toBe(count);
    await harness.stop();

    harness = await startWebHarness();
    expect(await (await importBody(faces.map(line).join("\n"))).json()).toMatchObject({ imported: count, refused: 0 });
    expect(harness.gallery.list()).toEqual(listed);
  });

  test("an import fixes the gallery's dimensions: an enrollment of another dimension after it is refused, nothing logged", async () => {
    harness = await startWebHarness();
    const eightD = line({ subject: "Ada", embedding: [1, 0, 0, 0, 0, 0, 0, 0] });
    expect(await (await importBody(eightD)).json()).toMatchObject({ imported: 1 });
    // The harness's app instance leaves 4-d embeddings.
    const enrolled = await harness.app.handle(request("/v1/subjects/Bob/faces", { method: "POST", body: multipart("image", images.png, "bob.png", "image/png"), headers: AUTH }));
    expect(enrolled.status).toBe(409);
    expect((await new GalleryReader(harness.galleryBucket).current())?.list()).toEqual([{ subject: "Ada", faces: 1 }]);
  });

  test("both need the admin token; a line past the length bound is refused without being held", async () => {
    harness = await startWebHarness();
    expect((await importBody(line({ subject: "Ada", embedding: [1, 0, 0, 0] }), {})).status).toBe(401);
    expect((await harness.app.handle(request("/v1/gallery/export"))).status).toBe(401);
    const long = line({ subject: "Ada", embedding: Array.from({ length: 4096 }, () => 0.123456789), source: "x".repeat(300_000) });
    const response = await importBody(`${long}\n${line({ subject: "Ada", embedding: [1, 0, 0, 0] })}`);
    expect(await response.json()).toMatchObject({ imported: 1, refused: 1, errors: [{ line: 1, error: "line_too_long" }] });
  });

  describe("its own bound, maxImportBytes (here 64 KiB), not the upload limits' body bound (here 16 KiB)", () => {
    const MAX_IMPORT_BYTES = 64 * 1024;
    const start = () => startWebHarness({ limits: { maxFileBytes: 8 * 1024, maxBodyBytes: 16 * 1024 }, maxImportBytes: MAX_IMPORT_BYTES });
    const faceLines = (count: number) => Array.from({ length: count }, (_, i) => `${line({ subject: `person-${i}`, embedding: [Math.cos(i), Math.sin(i), 1, 0] })}\n`);
    /** The lines as a chunked body (no content-length), in pieces of 1,000 bytes, so the bound falls inside a piece. */
    const chunked = (text: string) => {
      const bytes = new TextEncoder().encode(text);
      let at = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (at >= bytes.length) return controller.close();
          controller.enqueue(bytes.subarray(at, (at += 1000)));
        },
      });
    };
    const send = (body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) =>
      harness!.app.handle(request("/v1/gallery/import", { method: "POST", body, headers: { ...AUTH, "content-type": "application/x-ndjson", ...headers } }));

    test("a body past the upload limits' body bound and within its own, with its content-length: every line imported", async () => {
      harness = await start();
      const text = faceLines(500).join("");
      expect(text.length).toBeGreaterThan(2 * 16 * 1024);
      expect(text.length).toBeLessThan(MAX_IMPORT_BYTES);
      const response = await send(text, { "content-length": String(text.length) });
      expect(await response.json()).toEqual({ imported: 500, refused: 0, errors: [] });
    });

    test("past it by its content-length: 413 import_too_large before a byte is read, nothing imported", async () => {
      harness = await start();
      const text = faceLines(1500).join("");
      expect(text.length).toBeGreaterThan(MAX_IMPORT_BYTES);
      const response = await send(text, { "content-length": String(text.length) });
      expect(response.status).toBe(413);
      expect(await response.json()).toMatchObject({ error: "import_too_large", message: expect.stringContaining("nothing was read or imported") });
      expect(harness.gallery.list()).toEqual([]);
    });

    test("a chunked body past it: the lines that ended within the bound imported, 413 import_too_large naming the line to send next; the rest from there imports", async () => {
      harness = await start();
      const lines = faceLines(1500);
      // The first line whose newline falls past the bound: the one it is cut in.
      let bytes = 0;
      const cutAt = lines.findIndex((text) => (bytes += text.length) > MAX_IMPORT_BYTES) + 1;
      expect(cutAt).toBeGreaterThan(1);
      const response = await send(chunked(lines.join("")));
      expect(response.status).toBe(413);
      const { error, message } = (await response.json()) as { error: string; message: string };
      expect(error).toBe("import_too_large");
      expect(message).toContain(`from line ${cutAt} on`);
      expect(message).toContain(`(${cutAt - 1} faces, 0 lines refused)`);
      expect(harness.gallery.list()).toHaveLength(cutAt - 1);
      expect(harness.gallery.list().every(({ subject }) => Number(subject.slice("person-".length)) < cutAt - 1)).toBe(true);
      const rest = await send(chunked(lines.slice(cutAt - 1).join("")));
      expect(await rest.json()).toEqual({ imported: 1500 - (cutAt - 1), refused: 0, errors: [] });
      expect(harness.gallery.list()).toHaveLength(1500);
    });
  });
});
