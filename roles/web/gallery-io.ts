/**
 * Bulk import and export of the gallery as NDJSON, one face a line: `{"subject","embedding":[…],"source"?}`. An import
 * is read as a stream, not bound by the image upload limits but by its own, `maxImportBytes` (the server's body
 * backstop is set above it), checked line by line (a bad line is refused and reported, the others imported) and written
 * as segments of the gallery store directly.
 */
import { Elysia, t } from "elysia";
import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { SEGMENT_FACES, type GalleryWriter } from "../gallery-store.ts";
import { API_PATH } from "./access.ts";
import { errorAnswers, withExample } from "./api-schemas.ts";
import { HttpError } from "./http-error.ts";
import { requestId } from "./request-id.ts";
import { normalisedEmbedding } from "./search.ts";
import { SubjectName } from "./subjects.ts";

const ImportLineSchema = t.Object({
  subject: SubjectName,
  embedding: t.Array(t.Number(), { minItems: 1, maxItems: 4096 }),
  source: t.Optional(t.String({ maxLength: 255 })),
});
/** As OpenAPI documents the body: one line's schema. */
const importLineDocumented: TSchema = ImportLineSchema;
/** A line longer than this is refused without being held: a 4,096-d embedding in JSON fits many times over. */
const MAX_LINE_BYTES = 256 * 1024;
/** Refused lines reported one by one; the rest are only counted. */
const MAX_REPORTED = 100;

const ImportSummarySchema = withExample(
  t.Object({
    imported: t.Integer({ description: "faces added" }),
    refused: t.Integer({ description: "lines not imported" }),
    errors: t.Array(t.Object({ line: t.Integer({ description: "from 1" }), error: t.String(), message: t.String() }), { description: `the first ${MAX_REPORTED} refused lines` }),
  }),
  { imported: 2, refused: 1, errors: [{ line: 2, error: "wrong_dimensions", message: "the embedding has 3 dimensions; the gallery's have 128" }] },
);

const ExportSchema = withExample(t.String({ description: 'NDJSON, one face a line: {"subject","embedding","source","faceId","createdAt"}' }), `${JSON.stringify({
  subject: "Ada_Lovelace",
  embedding: [0.6, 0.8],
  source: "ada.jpg",
  faceId: "f7",
  createdAt: "2026-12-07T00:00:00.000Z",
})}\n`);

/**
 * The lines of a byte stream, each with its number; a line past `MAX_LINE_BYTES` comes as undefined (and is skipped).
 * Past `maxBytes` the stream is read no further: the lines that ended within them come, then `{ cutAt }`, the number of
 * the line the bound fell in (whatever of it arrived is dropped).
 */
async function* lines(body: ReadableStream<Uint8Array>, maxBytes: number): AsyncGenerator<{ number: number; text: string | undefined } | { cutAt: number }> {
  const decoder = new TextDecoder();
  let held = "";
  let tooLong = false;
  let number = 0;
  let received = 0;
  for await (const whole of body) {
    const chunk = received + whole.byteLength > maxBytes ? whole.subarray(0, maxBytes - received) : whole;
    received += whole.byteLength;
    const parts = (held + decoder.decode(chunk, { stream: true })).split("\n");
    held = parts.pop()!;
    for (const part of parts) {
      number++;
      yield { number, text: tooLong || part.length > MAX_LINE_BYTES ? undefined : part };
      tooLong = false;
    }
    if (held.length > MAX_LINE_BYTES) {
      held = "";
      tooLong = true;
    }
    if (received > maxBytes) {
      yield { cutAt: number + 1 };
      return;
    }
  }
  held += decoder.decode();
  if (held.length > 0 || tooLong) yield { number: number + 1, text: tooLong || held.length > MAX_LINE_BYTES ? undefined : held };
}

type Checked = { subject: string; embedding: Float32Array; source: string } | { error: string; message: string };

function checkLine(text: string | undefined, dimensions: number | undefined): Checked {
  if (text === undefined) return { error: "line_too_long", message: `a line has more than ${MAX_LINE_BYTES} bytes` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { error: "invalid_json", message: "the line is not JSON" };
  }
  if (!Value.Check(ImportLineSchema, parsed)) return { error: "invalid_line", message: 'expected {"subject","embedding":[numbers],"source"?} with a valid subject name' };
  const embedding = normalisedEmbedding(parsed.embedding, dimensions ?? parsed.embedding.length);
  if ("error" in embedding) return embedding;
  return { subject: parsed.subject, embedding, source: parsed.source ?? "" };
}

export const IMPORT_PATH = `${API_PATH}/gallery/import`;

export function galleryIoApi(options: { gallery: Pick<GalleryWriter, "importFaces" | "exportFaces" | "dimensions">; maxImportBytes: number }) {
  const { gallery, maxImportBytes } = options;
  const tooLarge = (detail: string) => new HttpError(413, "import_too_large", `the import has more than ${maxImportBytes} bytes (FACEFLEET_MAX_IMPORT_BYTES): ${detail}`);
  return new Elysia({ name: "gallery-io-api" })
    .use(requestId)
    .post(
      IMPORT_PATH,
      async ({ request }) => {
        if (Number(request.headers.get("content-length") ?? 0) > maxImportBytes) throw tooLarge("nothing was read or imported; split it into several requests");
        if (!request.body) throw new HttpError(400, "missing_body", "send NDJSON lines: {\"subject\",\"embedding\",\"source\"?}");
        const summary = { imported: 0, refused: 0, errors: [] as { line: number; error: string; message: string }[] };
        let dimensions = gallery.dimensions;
        let chunk: { subject: string; embedding: Float32Array; source: string }[] = [];
        const flush = async () => {
          summary.imported += (await gallery.importFaces(chunk)).length;
          chunk = [];
          // A segment's lines, parsed, are megabytes of garbage: collected at once, a bulk fill leaves the process the
          // size of the names it holds (about 170 MB after 1M faces), not 370 MB of what the allocator kept from it.
          Bun.gc(true);
        };
        for await (const line of lines(request.body, maxImportBytes)) {
          if ("cutAt" in line) {
            if (chunk.length > 0) await flush();
            throw tooLarge(
              `it was read up to line ${line.cutAt}, in which the bound fell; the lines before it were imported (${summary.imported} faces, ${summary.refused} lines refused). Send the rest from line ${line.cutAt} on in another request`,
            );
          }
          const { number, text } = line;
          if (text !== undefined && text.trim() === "") continue;
          const checked = checkLine(text, dimensions);
          if ("error" in checked) {
            summary.refused++;
            if (summary.errors.length < MAX_REPORTED) summary.errors.push({ line: number, ...checked });
            continue;
          }
          dimensions ??= checked.embedding.length;
          chunk.push(checked);
          if (chunk.length === SEGMENT_FACES) await flush();
        }
        if (chunk.length > 0) await flush();
        return summary;
      },
      {
        parse: "none",
        response: { 200: ImportSummarySchema, ...errorAnswers([400, 401, 403, 409, 413], { 413: { error: "import_too_large", message: "the import has more than 4294967296 bytes (FACEFLEET_MAX_IMPORT_BYTES): nothing was read or imported; split it into several requests" } }) },
        detail: {
          summary: "Import faces from NDJSON lines {subject, embedding, source?}; bad lines are refused one by one",
          tags: ["subjects"],
          requestBody: { required: true, content: { "application/x-ndjson": { schema: importLineDocumented } } },
        },
      },
    )
    .get(
      `${API_PATH}/gallery/export`,
      () => {
        const faces = gallery.exportFaces();
        const encoder = new TextEncoder();
        const stream = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const next = await faces.next();
            if (next.done) return controller.close();
            const { subject, embedding, source, faceId, createdAt } = next.value;
            controller.enqueue(encoder.encode(`${JSON.stringify({ subject, embedding: Array.from(embedding), source, faceId, createdAt })}\n`));
          },
        });
        return new Response(stream, { headers: { "content-type": "application/x-ndjson" } });
      },
      {
        response: { 200: ExportSchema, ...errorAnswers([401, 403]) },
        detail: { summary: "Export every face as NDJSON lines, as the import takes them", tags: ["subjects"] },
      },
    );
}
