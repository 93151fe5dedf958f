/** `GET /healthz`: `{"status":"ok", …}` with whatever the role reports about itself. */
import { Elysia, t } from "elysia";

const HealthSchema = t.Object({ status: t.Literal("ok") }, { additionalProperties: true, examples: [{ status: "ok", role: "web", waitingRequests: 0, subjects: 12 }] });

export function health(report: () => Record<string, unknown>) {
  return new Elysia({ name: "health" }).get("/healthz", () => ({ status: "ok" as const, ...report() }), {
    response: { 200: HealthSchema },
    detail: { summary: "Liveness, with what the role reports about itself", tags: ["operations"] },
  });
}
