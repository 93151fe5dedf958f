/** `GET /healthz`: `{"status":"ok", …}` with whatever the role reports about itself. */
import { Elysia } from "elysia";

export function health(report: () => Record<string, unknown>) {
  return new Elysia({ name: "health" }).get("/healthz", () => ({ status: "ok", ...report() }));
}
