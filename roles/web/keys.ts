/**
 * `/v1/keys`: the admin makes, lists and revokes recognition keys (`api-key-store.ts`). The key is in the creation's
 * answer only; the list shows ids, names and times, never a key or its hash. A recognition key is refused here (403):
 * `key-scope.ts` does not name these routes.
 */
import { Elysia, t } from "elysia";
import { API_PATH } from "./access.ts";
import { ApiKeyStore, KeyIdSchema, KeyNameSchema, TooManyKeysError } from "./api-key-store.ts";
import { errorAnswers, withExample } from "./api-schemas.ts";
import { HttpError } from "./http-error.ts";
import { JSON_ONLY, UNSUPPORTED_MEDIA_TYPE } from "./json-body.ts";
import { requestId } from "./request-id.ts";

const EXAMPLE_KEY = { id: "3fa85f6457c1", name: "front-desk kiosk", createdAt: "2026-12-07T01:30:00.000Z" };

const KeySummarySchema = t.Object({
  id: KeyIdSchema,
  name: t.String(),
  createdAt: t.String({ format: "date-time" }),
  lastUsedAt: t.Union([t.String({ format: "date-time" }), t.Null()], { description: "the last request this web process saw carry the key (refused for its route or not); null if none since it started" }),
});
export const CreateKeyBodySchema = t.Object({ name: KeyNameSchema });
export const CreatedKeySchema = withExample(
  t.Object({
    id: KeyIdSchema,
    name: t.String(),
    createdAt: t.String({ format: "date-time" }),
    key: t.String({ description: "the key, to send as `Authorization: Bearer <key>`: shown this once, stored only as its SHA-256" }),
  }),
  { ...EXAMPLE_KEY, key: "ffk_3fa85f6457c1_q8Zb0v3m1sYV2u0hX9dWkLr4nJtEa7cPfG6yHiO5TzQ" },
);
export const KeyListSchema = withExample(t.Object({ keys: t.Array(KeySummarySchema) }), { keys: [{ ...EXAMPLE_KEY, lastUsedAt: "2026-12-07T02:10:41.512Z" }] });
export const RevokedKeySchema = withExample(t.Object({ id: KeyIdSchema, revoked: t.Literal(true) }), { id: EXAMPLE_KEY.id, revoked: true });

const tags = ["keys"];

export function keysApi(options: { keys: ApiKeyStore }) {
  const { keys } = options;
  return new Elysia({ name: "keys-api" })
    .use(requestId)
    .post(
      `${API_PATH}/keys`,
      async ({ body, set }) => {
        try {
          const { key, summary } = await keys.create(body.name);
          set.status = 201;
          return { id: summary.id, name: summary.name, createdAt: summary.createdAt, key };
        } catch (error) {
          if (error instanceof TooManyKeysError) throw new HttpError(409, "too_many_keys", error.message);
          throw error;
        }
      },
      {
        parse: JSON_ONLY,
        body: CreateKeyBodySchema,
        response: { 201: CreatedKeySchema, ...errorAnswers([400, 401, 403, 409, 415], { 415: UNSUPPORTED_MEDIA_TYPE, 409: { error: "too_many_keys", message: "there are 1000 keys already, the most there may be: revoke one first" } }) },
        detail: { summary: "Make a recognition key (admin): it may recognize, detect, verify and search, nothing else; the key is shown once", tags },
      },
    )
    .get(`${API_PATH}/keys`, () => ({ keys: keys.list() }), {
      response: { 200: KeyListSchema, ...errorAnswers([401, 403]) },
      detail: { summary: "List the recognition keys (admin): ids, names, times, never a key", tags },
    })
    .delete(
      `${API_PATH}/keys/:id`,
      async ({ params }) => {
        if (!(await keys.revoke(params.id))) throw new HttpError(404, "unknown_key", `no key with id '${params.id}'`);
        return { id: params.id, revoked: true as const };
      },
      {
        params: t.Object({ id: KeyIdSchema }),
        response: { 200: RevokedKeySchema, ...errorAnswers([400, 401, 403, 404], { 404: { error: "unknown_key", message: "no key with id '3fa85f6457c1'" } }) },
        detail: { summary: "Revoke a recognition key (admin): refused from the next request on", tags },
      },
    );
}
