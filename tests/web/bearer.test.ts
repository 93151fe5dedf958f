// The bearer guard on its own: a policy over route templates, checked before the body is read, the token read on every request.
import { describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import type { AccessPolicy } from "../../roles/web/access.ts";
import { bearerGuard } from "../../roles/web/bearer.ts";
import { errorMapping } from "../../roles/web/errors.ts";
import { captureLogs, request } from "./support.ts";

describe("bearer guard", () => {
  let token = "first-token";
  let bodiesRead = 0;
  const policy: AccessPolicy = (_method, template) => (template.startsWith("/admin/") ? "admin" : "none");
  const features = new Elysia()
    .get("/open", () => "open")
    .get("/admin/list", () => "listed")
    .post(
      "/admin/upload",
      async ({ request }) => {
        bodiesRead++;
        return String((await request.text()).length);
      },
      { parse: "none" },
    );
  const app = new Elysia()
    .use(errorMapping(captureLogs().logger))
    .use(bearerGuard({ policy, token: () => token, keys: { verify: () => undefined }, routes: () => features.routes }))
    .use(features);

  const get = (path: string, authorization?: string) => app.handle(request(path, { headers: authorization ? { authorization } : {} }));

  test("routes its policy leaves open stay open", async () => {
    expect((await get("/open")).status).toBe(200);
  });

  test("no header, another scheme, a wrong token, a prefix or an extension of it: 401 unauthorized", async () => {
    for (const authorization of [undefined, `Basic ${token}`, "Bearer wrong", "Bearer first", "Bearer first-token-and-more", `Bearer ${token.toUpperCase()}`, `Bearer ${token} x`, "Bearer "]) {
      const response = await get("/admin/list", authorization);
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: "unauthorized" });
    }
    expect(await (await get("/admin/list", `Bearer ${token}`)).text()).toBe("listed");
  });

  test("the scheme's name is case-insensitive (RFC 7235), the token is not", async () => {
    for (const authorization of [`bearer ${token}`, `BEARER ${token}`, `Bearer  ${token}`]) expect((await get("/admin/list", authorization)).status).toBe(200);
    expect((await get("/admin/list", `bearer ${token.toUpperCase()}`)).status).toBe(401);
  });

  test("every 401 says how to authenticate (RFC 6750): the realm, and invalid_token when a bearer token was wrong", async () => {
    const challenge = async (authorization?: string) => (await get("/admin/list", authorization)).headers.get("www-authenticate");
    for (const authorization of [undefined, `Basic ${token}`, "Bearer "]) expect(await challenge(authorization)).toBe('Bearer realm="facefleet"');
    for (const authorization of ["Bearer wrong", "Bearer first", `Bearer ${token}-and-more`]) expect(await challenge(authorization)).toBe('Bearer realm="facefleet", error="invalid_token"');
    const accepted = await get("/admin/list", `Bearer ${token}`);
    expect(accepted.status).toBe(200);
    expect(accepted.headers.get("www-authenticate")).toBeNull();
  });

  test("a refused upload is never read", async () => {
    let pulled = 0;
    const body = new ReadableStream({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(1024));
        if (pulled > 10) controller.close();
      },
    });
    const response = await app.handle(request("/admin/upload", { method: "POST", body, headers: { authorization: "Bearer wrong" } }));
    expect(response.status).toBe(401);
    expect(bodiesRead).toBe(0);
    expect(pulled).toBeLessThanOrEqual(1); // a stream may be primed with one chunk; nobody consumed it
  });

  test("a rotated token takes effect on the next request", async () => {
    token = "second-token";
    expect((await get("/admin/list", "Bearer first-token")).status).toBe(401);
    expect((await get("/admin/list", "Bearer second-token")).status).toBe(200);
  });

  test("the decision after routing holds on its own: a route the arrival check found no template for, before its parameters are validated", async () => {
    const routed = new Elysia()
      .use(errorMapping(captureLogs().logger))
      .use(bearerGuard({ policy, token: () => token, keys: { verify: () => undefined }, routes: () => [] }))
      .get("/admin/items/:id", ({ params }) => params.id, { params: t.Object({ id: t.String({ pattern: "^[0-9]+$" }) }) });
    for (const path of ["/admin/items/7", "/admin/items/not-a-number"]) {
      const response = await routed.handle(request(path));
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toBe('Bearer realm="facefleet"');
    }
    expect(await (await routed.handle(request("/admin/items/7", { headers: { authorization: `Bearer ${token}` } }))).text()).toBe("7");
  });
});
