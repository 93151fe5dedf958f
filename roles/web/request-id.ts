/**
 * The request id, made in this one place when a request arrives: every answer carries it as `x-request-id` (errors,
 * refusals before the body is read and not-found included), and every log line about the request names it.
 */
import { Elysia } from "elysia";

const requestIds = new WeakMap<Request, string>();

/** The id of a request seen by the plugin (a fresh one for a request it never saw, which cannot happen once mounted). */
export function requestIdOf(request: Request): string {
  let id = requestIds.get(request);
  if (id === undefined) {
    id = crypto.randomUUID();
    requestIds.set(request, id);
  }
  return id;
}

export const requestId = new Elysia({ name: "request-id" })
  .onRequest(({ request, set }) => {
    set.headers["x-request-id"] = requestIdOf(request);
  })
  .derive({ as: "global" }, ({ request }) => ({ requestId: requestIdOf(request) }));
