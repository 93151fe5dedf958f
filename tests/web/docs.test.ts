// The API docs: OpenAPI 3 listing every route with its schemas and an example, and a docs page that loads nothing
// from outside the service.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Kind, type TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { recognitionKeyMay } from "../../roles/web/key-scope.ts";
import { DEFAULT_OPERATING_POINTS, request, startWebHarness, TEST_UPLOAD_LIMITS, type WebHarness } from "./support.ts";

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
type Spec = { openapi: string; info: { description: string }; paths: Record<string, Record<string, Operation>> };

const openApiPath = (path: string) => path.replace(/:(\w+)/g, "{$1}");

async function fetchSpec(): Promise<Spec> {
  const response = await harness.app.handle(request("/openapi/json"));
  expect(response.status).toBe(200);
  return (await response.json()) as Spec;
}

/** Every TypeBox schema carrying examples anywhere inside `value` (a schema, or a record of them by status). */
function examplesIn(value: unknown, at: string): { at: string; schema: TSchema }[] {
  if (typeof value !== "object" || value === null) return [];
  const own = Kind in value && Array.isArray((value as TSchema).examples) ? [{ at, schema: value as TSchema }] : [];
  return [...own, ...Object.entries(value).flatMap(([key, inner]) => examplesIn(inner, `${at}/${key}`))];
}

/** A route whose body the upload reader streams: Elysia parses none of it. */
const streamsBody = (route: { hooks: { parse?: unknown } }) => Array.isArray(route.hooks.parse) && route.hooks.parse.some((parser: { fn?: unknown }) => parser.fn === "none");
const documentedRoutes = () => harness.app.routes.filter((route) => !(route.hooks.detail as { hide?: boolean } | undefined)?.hide);

describe("API docs", () => {
  test("the document states the upload limits in force: per file, and per body", async () => {
    const { info } = await fetchSpec();
    const { maxFileBytes, maxBodyBytes } = TEST_UPLOAD_LIMITS;
    expect(info.description).toContain(`each file at most ${maxFileBytes} bytes`);
    expect(info.description).toContain(`each request body at most ${maxBodyBytes} bytes`);
  });

  test("/openapi/json is OpenAPI 3 and lists every route but the docs' and the page's own, with its parameters and body", async () => {
    const spec = await fetchSpec();
    expect(spec.openapi).toMatch(/^3\./);
    const documented = documentedRoutes();
    expect(documented.map((route) => `${route.method} ${route.path}`)).toEqual(expect.arrayContaining(["GET /metrics", "GET /stats", "GET /healthz", "POST /", "POST /v1/recognize"]));
    const streamed = documented.filter(streamsBody).map((route) => `${route.method} ${route.path}`);
    expect(streamed.sort()).toEqual(["POST /", "POST /v1/detect", "POST /v1/gallery/import", "POST /v1/recognize", "POST /v1/subjects/:name/faces", "POST /v1/subjects/:name/verify", "POST /v1/verify"]);
    for (const route of documented) {
      const operation = spec.paths[openApiPath(route.path)]?.[route.method.toLowerCase()];
      expect(operation, `${route.method} ${route.path}`).toBeDefined();
      // The routes that take images, or an import's lines, read their body as a stream (parse "none"); their docs still
      // show the body: multipart, or one NDJSON line.
      if (streamsBody(route)) {
        const content = operation!.requestBody?.content;
        expect((content?.["multipart/form-data"] ?? content?.["application/x-ndjson"])?.schema, `${route.method} ${route.path} streamed body`).toMatchObject({ type: "object" });
      }
      if (route.hooks.body) expect(operation!.requestBody?.content["multipart/form-data"] ?? operation!.requestBody?.content["application/json"], `${route.method} ${route.path} body`).toBeDefined();
      for (const name of route.path.match(/:(\w+)/g) ?? []) {
        expect(operation!.parameters?.map((parameter) => parameter.name), `${route.method} ${route.path}`).toContain(name.slice(1));
      }
    }
  });

  const withoutExample = async (routes: ReturnType<typeof documentedRoutes>) => {
    const spec = await fetchSpec();
    return routes
      .filter((route) => {
        const answers = Object.entries(spec.paths[openApiPath(route.path)]?.[route.method.toLowerCase()]?.responses ?? {}).filter(([status]) => status.startsWith("2"));
        const schemas = answers.flatMap(([, answer]) => Object.values(answer.content ?? {}));
        return schemas.length === 0 || schemas.some(({ schema }) => !schema.examples?.length);
      })
      .map((route) => `${route.method} ${route.path}`);
  };

  test("the operations routes and the classic contract each have an answer schema with an example", async () => {
    expect(await withoutExample(documentedRoutes().filter((route) => !route.path.startsWith("/v1")))).toEqual([]);
  });

  test("recognize and both verifications document far with an example and the calibrated rates, and answer threshold and far", async () => {
    const spec = await fetchSpec();
    const calibrated = DEFAULT_OPERATING_POINTS.map(([far]) => String(far)).join(", ");
    for (const path of ["/v1/recognize", "/v1/verify", "/v1/subjects/{name}/verify"]) {
      const operation = spec.paths[path]!.post!;
      const far = operation.parameters?.find((parameter) => parameter.name === "far");
      expect(far, path).toMatchObject({ in: "query", required: false, schema: { type: "string", pattern: expect.any(String), examples: ["0.01"], description: expect.stringContaining(calibrated) } });
      const answer = operation.responses?.["200"]?.content?.["application/json"]?.schema as { required?: string[]; examples?: Record<string, unknown>[] };
      expect(answer.required, path).toEqual(expect.arrayContaining(["threshold", "far"]));
      expect(answer.examples?.[0], path).toMatchObject({ threshold: expect.any(Number), far: 0.001 });
    }
  });

  test("every number in a query is documented as the text it takes: a pattern, and its bounds in the description", async () => {
    const spec = await fetchSpec();
    const numbers: [string, string, string, string][] = [
      ["/v1/recognize", "post", "k", "an integer from 1 to 20, in decimal digits"],
      ["/v1/recognize", "post", "maxFaces", "an integer from 1 to 100, in decimal digits"],
      ["/v1/recognize", "post", "minScore", "a number from 0 to 1, written as decimal digits"],
      ["/v1/recognize", "post", "far", "a number between 0 and 1 exclusive, written as decimal digits"],
      ["/v1/detect", "post", "maxFaces", "an integer from 1 to 100, in decimal digits"],
      ["/v1/detect", "post", "minScore", "a number from 0 to 1, written as decimal digits"],
      ["/v1/verify", "post", "far", "a number between 0 and 1 exclusive"],
      ["/v1/subjects/{name}/verify", "post", "far", "a number between 0 and 1 exclusive"],
      ["/v1/subjects", "get", "page", "an integer from 1 to 1000000, in decimal digits"],
      ["/v1/subjects", "get", "size", "an integer from 1 to 1000, in decimal digits"],
    ];
    for (const [path, method, name, takes] of numbers) {
      const parameter = spec.paths[path]?.[method]?.parameters?.find((candidate) => candidate.name === name);
      // Read before toMatchObject, which leaves its matchers in the object it matched (Bun 1.4).
      const pattern = new RegExp((parameter?.schema as { pattern: string }).pattern);
      expect(parameter, `${path} ${name}`).toMatchObject({ in: "query", required: false, schema: { type: "string", pattern: expect.any(String), description: expect.stringContaining(takes) } });
      expect(["1e1", "0x10", " 5", "", "-0", "Infinity", "1_000"].filter((text) => pattern.test(text)), `${path} ${name}`).toEqual(name === "far" || name === "minScore" ? ["1e1"] : []);
    }
  });

  test("every /v1 route has an answer schema with an example", async () => {
    expect(await withoutExample(documentedRoutes().filter((route) => route.path.startsWith("/v1")))).toEqual([]);
  });

  test("every /v1 route documents its 4xx answers with the error schema and an example of each", async () => {
    const spec = await fetchSpec();
    for (const route of documentedRoutes().filter((route) => route.path.startsWith("/v1"))) {
      const responses = spec.paths[openApiPath(route.path)]![route.method.toLowerCase()]!.responses ?? {};
      const errors = Object.entries(responses).filter(([status]) => status.startsWith("4"));
      // 401 from the guard; 403 where a recognition key is refused.
      const guarded = recognitionKeyMay(route.method, route.path) ? ["401"] : ["401", "403"];
      expect(errors.map(([status]) => status), `${route.method} ${route.path}`).toEqual(expect.arrayContaining(guarded));
      for (const [status, answer] of errors) {
        const example = answer.content?.["application/json"]?.schema.examples?.[0] as { error?: string } | undefined;
        expect(example?.error, `${route.method} ${route.path} ${status}`).toEqual(expect.any(String));
      }
    }
  });

  test("every example validates against the schema it documents, on every route", () => {
    const failures: string[] = [];
    let checked = 0;
    for (const route of documentedRoutes()) {
      const { body, query, params, response } = route.hooks as Record<string, unknown>;
      for (const [part, schema] of Object.entries({ body, query, params, response })) {
        for (const { at, schema: annotated } of examplesIn(schema, part)) {
          for (const example of annotated.examples as unknown[]) {
            checked++;
            const error = Value.Errors(annotated, example).First();
            if (error) failures.push(`${route.method} ${route.path} ${at}${error.path}: ${error.message}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(documentedRoutes().length);
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
    // Left on, Swagger UI loads a validation badge from validator.swagger.io for any host but localhost.
    expect(html).toContain(`"validatorUrl":"none"`);
  });

  test("/docs has a CSP: this origin's scripts only, no inline script, no framing; the viewer keeps no token past the tab", async () => {
    const response = await harness.app.handle(request("/docs"));
    const csp = response.headers.get("content-security-policy") ?? "";
    const directives = new Map(csp.split(";").map((directive) => directive.trim().split(/\s+/)).map(([name, ...values]) => [name!, values]));
    expect(directives.get("default-src")).toEqual(["'self'"]);
    expect(directives.has("script-src")).toBe(false); // default-src 'self': no inline script, no eval
    expect(directives.get("frame-ancestors")).toEqual(["'none'"]);
    expect(directives.get("object-src")).toEqual(["'none'"]);
    const html = await response.text();
    // Every script is a file of the service's; the one inline block is JSON, which no browser runs.
    for (const [tag] of html.matchAll(/<script[^>]*>/g)) expect(tag).toMatch(/ src="\/|type="application\/json"/);
    const viewer = await (await harness.app.handle(request("/docs/assets/viewer.js"))).text();
    expect(viewer).toContain("SwaggerUIBundle");
    // persistAuthorization would keep the admin token in localStorage; it is off by default, and not turned on.
    expect(`${html}${viewer}`).not.toContain("persistAuthorization");
  });
});
