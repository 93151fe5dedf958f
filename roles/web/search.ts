/**
 * `POST /v1/search`: the nearest subjects to an embedding the caller computed. The web role checks it against the
 * gallery's dimensions; an app instance, which holds the embeddings, searches (a search job).
 */
import { Type } from "@sinclair/typebox";
import { Elysia, t } from "elysia";
import { MAX_CANDIDATES } from "../messages.ts";
import { API_PATH } from "./access.ts";
import { CandidateSchema, errorAnswers, EXAMPLE_CANDIDATES, withExample } from "./api-schemas.ts";
import { HttpError } from "./http-error.ts";
import { JSON_ONLY, UNSUPPORTED_MEDIA_TYPE } from "./json-body.ts";
import { DEFAULT_CANDIDATES } from "./recognize.ts";
import { requestId } from "./request-id.ts";
import type { JobSubmitter } from "./jobs.ts";
import type { SubjectStore } from "./subjects.ts";

export const SearchBodySchema = t.Object({
  embedding: t.Array(t.Number(), { minItems: 1, maxItems: 4096, description: "an embedding from the same model as the gallery's (L2-normalised here)" }),
  // TypeBox's integer, not Elysia's `t.Integer`, which would take the string "0x10" as 16: a JSON number only.
  k: t.Optional(Type.Integer({ minimum: 1, maximum: MAX_CANDIDATES, description: `candidates (default ${DEFAULT_CANDIDATES})` })),
});
export const SearchAnswerSchema = withExample(t.Object({ candidates: t.Array(CandidateSchema, { description: "best subjects first; empty while nobody is enrolled" }) }), {
  candidates: EXAMPLE_CANDIDATES,
});

/** A caller's embedding, L2-normalised, or why it cannot be compared with the gallery's. */
export function normalisedEmbedding(values: readonly number[], dimensions: number): Float32Array | { error: "wrong_dimensions" | "invalid_embedding"; message: string } {
  if (values.length !== dimensions) return { error: "wrong_dimensions", message: `the embedding has ${values.length} dimensions; the gallery's have ${dimensions}` };
  const norm = Math.hypot(...values);
  if (!(norm > 0) || !Number.isFinite(norm)) return { error: "invalid_embedding", message: "the embedding must be finite and not all zeros" };
  return Float32Array.from(values, (value) => value / norm);
}

export function searchApi(options: { jobs: JobSubmitter; gallery: Pick<SubjectStore, "dimensions"> }) {
  const { jobs, gallery } = options;
  return new Elysia({ name: "search-api" })
    .use(requestId)
    .post(
      `${API_PATH}/search`,
      async ({ body, requestId }) => {
        const dimensions = gallery.dimensions;
        if (dimensions === undefined) return { candidates: [] };
        const embedding = normalisedEmbedding(body.embedding, dimensions);
        if ("error" in embedding) throw new HttpError(400, embedding.error, embedding.message);
        return { candidates: await jobs.search(requestId, embedding, body.k ?? DEFAULT_CANDIDATES) };
      },
      {
        parse: JSON_ONLY,
        body: SearchBodySchema,
        response: { 200: SearchAnswerSchema, ...errorAnswers([400, 401, 415], { 415: UNSUPPORTED_MEDIA_TYPE }) },
        detail: { summary: "The nearest subjects to an embedding you computed", tags: ["recognition"] },
      },
    );
}
