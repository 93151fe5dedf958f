// Every answer of the composed server says nosniff: each route's, a handler's own Response (text, files, the docs),
// refusals before routing (no token, too large a body), validation errors, unknown routes and faults.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { AUTH, multipart, request, startWebHarness, testImages, type WebHarness } from "./support.ts";

let harness: WebHarness;
beforeAll(async () => {
  harness = await startWebHarness();
});
afterAll(() => harness.stop());

const handle = (path: string, init: RequestInit = {}) => harness.app.handle(request(path, init));

async function expectNosniff(what: string, answer: Promise<Response>): Promise<number> {
  const response = await answer;
  expect(`${what}: ${response.headers.get("x-content-type-options")}`).toBe(`${what}: nosniff`);
  return response.status;
}

test("every route, with and without the token, answers nosniff", async () => {
  const paths = harness.app.routes.map((route) => ({ method: route.method, path: route.path.replace(":name", "Paul").replace(":faceId", "f1").replace(":id", "0123456789ab") }));
  expect(paths.length).toBeGreaterThan(15);
  for (const { method, path } of paths) {
    await expectNosniff(`${method} ${path}`, handle(path, { method }));
    await expectNosniff(`${method} ${path} with the token`, handle(path, { method, headers: AUTH }));
  }
});

test("errors and refusals of every kind answer nosniff", async () => {
  const { jpeg } = await testImages();
  const cases: [string, Promise<Response>, number][] = [
    ["the classic text answer, echoing the file's name", handle("/", { method: "POST", body: multipart("inputFile", jpeg, "<script>.jpg") }), 200],
    ["an unknown route", handle("/nowhere"), 404],
    ["no token", handle("/v1/subjects"), 401],
    ["a body past the bound", handle("/v1/recognize", { method: "POST", headers: { ...AUTH, "content-length": String(1 << 30) } }), 413],
    ["a missing field", handle("/", { method: "POST", body: multipart("other", jpeg, "a.jpg") }), 400],
    ["a bad query parameter", handle("/v1/subjects?size=0", { headers: AUTH }), 400],
    ["a JSON body that is not JSON", handle("/v1/search", { method: "POST", headers: { ...AUTH, "content-type": "application/json" }, body: "{" }), 400],
    ["the docs page", handle("/docs"), 200],
    ["the OpenAPI document", handle("/openapi/json"), 200],
    ["Prometheus text", handle("/metrics"), 200],
  ];
  for (const [what, answer, status] of cases) expect(`${what}: ${await expectNosniff(what, answer)}`).toBe(`${what}: ${status}`);
});
