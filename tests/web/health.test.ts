// The health plugin on its own.
import { expect, test } from "bun:test";
import { health } from "../../roles/web/health.ts";
import { request } from "./support.ts";

test("GET /healthz is ok with what the role reports", async () => {
  const response = await health(() => ({ role: "web", waitingRequests: 3 })).handle(request("/healthz"));
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ status: "ok", role: "web", waitingRequests: 3 });
});
