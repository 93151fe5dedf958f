// The API docs: OpenAPI 3 listing every route with its schemas and an example, and a docs page that loads nothing
// from outside the service.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request, startWebHarness, type WebHarness } from "./support.ts";

let harness: WebHarness;
beforeAll(async () => {
  harness = await startWebHarness();
});
afterAll(() => harness.stop());

interface Operation {
  requestBody?: { content: Record<string, { schema: unknown }> };
  parameters?: { name: string; in: string; schema: unknown }[];
  responses?: Record<string, { content?: Record<string, { schema: { examples?: unknown[] } }> }>;
}
type Spec = { openapi: string; paths: Record<string, Record<string, Operation>> };

const openApiPath = (path: string) => path.replace(/:(\w+)/g, "{$1}");

describe("API docs", () => {
  test("/openapi/json is OpenAPI 3 and lists every route but the docs' and the page's own, each with an answer schema and an example", async () => {
    const response = await harness.app.handle(request("/openapi/json"));
    expect(response.status).toBe(200);
    const spec = (await response.json()) as Spec;
    expect(spec.openapi).toMatch(/^3\./);
    const documented = harness.app.routes.filter((route) => !(route.hooks.detail as { hide?: boolean } | undefined)?.hide);
    expect(documented.map((route) => `${route.method} ${route.path}`)).toEqual(expect.arrayContaining(["GET /metrics", "GET /stats", "GET /healthz", "POST /"]));
    for (const route of documented) {
      const operation = spec.paths[openApiPath(route.path)]?.[route.method.toLowerCase()];
      expect(operation, `${route.method} ${route.path}`).toBeDefined();
      const answers = Object.entries(operation!.responses ?? {}).filter(([status]) => status.startsWith("2"));
      expect(answers.length, `${route.method} ${route.path} has a 2xx answer schema`).toBeGreaterThan(0);
      for (const [status, answer] of answers) {
        const schemas = Object.values(answer.content ?? {});
        expect(schemas.length, `${route.method} ${route.path} ${status}`).toBeGreaterThan(0);
        for (const { schema } of schemas) expect(schema.examples?.length, `${route.method} ${route.path} ${status} has an example`).toBeGreaterThan(0);
      }
      if (route.hooks.body) expect(operation!.requestBody?.content["multipart/form-data"], `${route.method} ${route.path} body`).toBeDefined();
      for (const name of route.path.match(/:(\w+)/g) ?? []) {
        expect(operation!.parameters?.map((parameter) => parameter.name), `${route.method} ${route.path}`).toContain(name.slice(1));
      }
    }
  });

  test("/docs references only the service's own URLs, and each of them answers 200", async () => {
    const response = await harness.app.handle(request("/docs"));
    expect(response.status).toBe(200);
    const html = await response.text();
    const references = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    const loadedUrls = [...html.matchAll(/"url":"([^"]+)"/g)].map((match) => new URL(match[1]!, "http://localhost/docs").pathname);
    expect(references.length).toBeGreaterThanOrEqual(2);
    expect(html).not.toMatch(/https?:\/\//);
    for (const url of [...references, ...loadedUrls]) {
      expect(url.startsWith("/"), url).toBe(true);
      const asset = await harness.app.handle(request(url));
      expect(asset.status, url).toBe(200);
      expect((await asset.arrayBuffer()).byteLength, url).toBeGreaterThan(0);
    }
    expect(loadedUrls).toEqual(["/openapi/json"]);
  });
});
