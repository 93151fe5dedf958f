/**
 * Which credential each route needs, decided from its method and its template (`/v1/subjects/:name`), never from a
 * path as a client spelled it: a pure table, enforced by the bearer guard (`bearer.ts`). The JSON API, all of it:
 * recognize, verify and search tell who is enrolled, detect spends the fleet's compute, the subjects routes change
 * the gallery. The classic `POST /` only with `classicAuth` (the course's grader sends no credentials).
 */
import { recognitionKeyMay } from "./key-scope.ts";

export const API_PATH = "/v1";

/** `recognition`: the admin token or a recognition key (`key-scope.ts`). */
export type Credential = "none" | "recognition" | "admin";

export type AccessPolicy = (method: string, template: string) => Credential;

export function accessPolicy(options: { classicAuth: boolean }): AccessPolicy {
  return (method, template) => {
    const guarded = template === API_PATH || template.startsWith(`${API_PATH}/`) || (method === "POST" && template === "/" && options.classicAuth);
    if (!guarded) return "none";
    return recognitionKeyMay(method, template) ? "recognition" : "admin";
  };
}

export interface RouteTemplate {
  method: string;
  path: string;
}

/**
 * The template among `routes` that a canonical path (`request-target.ts`) names, as a router picks it: a static
 * segment before a parameter; a HEAD is a GET. Undefined when none does.
 */
export function templateOf(method: string, path: string, routes: readonly RouteTemplate[]): string | undefined {
  const wanted = method === "HEAD" ? "GET" : method;
  const segments = path.split("/");
  let best: string[] | undefined;
  for (const route of routes) {
    if (route.method !== wanted) continue;
    const parts = route.path.split("/");
    if (parts.length !== segments.length || !parts.every((part, i) => (part.startsWith(":") ? segments[i] !== "" : part === segments[i]))) continue;
    if (!best || moreStatic(parts, best)) best = parts;
  }
  return best?.join("/");
}

/** Whether template `a` has a static segment where `b` has its first parameter that `a` does not share. */
function moreStatic(a: string[], b: string[]): boolean {
  const differs = a.findIndex((part, i) => part.startsWith(":") !== b[i]!.startsWith(":"));
  return differs !== -1 && !a[differs]!.startsWith(":");
}

/** The parameters a canonical path gives a template that it matches, decoded as routers decode them. */
export function paramsOf(template: string, path: string): Record<string, string> {
  const segments = path.split("/");
  return Object.fromEntries(
    template
      .split("/")
      .flatMap((part, i) => (part.startsWith(":") ? [[part.slice(1), decodeURIComponent(segments[i]!)] as const] : [])),
  );
}
