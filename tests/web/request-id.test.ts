// The request id plugin on its own: one id per request, on every answer, errors and refusals included.
import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { errorMapping } from "../../roles/web/errors.ts";
import { HttpError } from "../../roles/web/http-error.ts";
import { requestId } from "../../roles/web/request-id.ts";
import { captureLogs, request } from "./support.ts";

describe("request id", () => {
  const logs = captureLogs();
  const app = new Elysia()
    .use(requestId)
    .use(errorMapping(logs.logger))
    .onRequest(({ request }) => {
      if (new URL(request.url).pathname === "/refused") throw new HttpError(403, "refused", "refused before routing");
    })
    .get("/ok", ({ requestId }) => ({ requestId }))
    .get("/plain", () => new Response("plain"))
    .get("/fails", () => {
      throw new Error("broken");
    });

  test("the handler sees the id that the answer carries, and each request has its own", async () => {
    const [first, second] = await Promise.all([app.handle(request("/ok")), app.handle(request("/ok"))]);
    for (const response of [first!, second!]) {
      expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
      expect(((await response.json()) as { requestId: string }).requestId).toBe(response.headers.get("x-request-id")!);
    }
    expect(first!.headers.get("x-request-id")).not.toBe(second!.headers.get("x-request-id"));
  });

  test("a Response made by a handler carries it too", async () => {
    expect((await app.handle(request("/plain"))).headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  for (const [what, path, status] of [
    ["a refusal before routing", "/refused", 403],
    ["an unknown route", "/nowhere", 404],
    ["a fault", "/fails", 500],
  ] as const) {
    test(`${what} carries the same id in its header, its body and the log`, async () => {
      const response = await app.handle(request(path));
      expect(response.status).toBe(status);
      const id = response.headers.get("x-request-id");
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(((await response.json()) as { requestId: string }).requestId).toBe(id!);
      expect(logs.lines.at(-1)).toMatchObject({ requestId: id, path, status });
    });
  }
});
