/**
 * Which routes a recognition key may call: those that look at a photo or an embedding and change nothing. Everything
 * else (enrollment, deletion, rename, listing subjects, key management, any route added later) needs the admin
 * token. A table of method and route template, and a lookup of the route a request was matched to (the guard finds
 * it with `templateOf`, access.ts).
 */

export const RECOGNITION_KEY_ROUTES: readonly { method: string; template: string }[] = [
  { method: "POST", template: "/" },
  { method: "POST", template: "/v1/recognize" },
  { method: "POST", template: "/v1/detect" },
  { method: "POST", template: "/v1/verify" },
  { method: "POST", template: "/v1/subjects/:name/verify" },
  { method: "POST", template: "/v1/search" },
];

const ALLOWED = new Set(RECOGNITION_KEY_ROUTES.map(({ method, template }) => `${method} ${template}`));

/** Whether a recognition key may call the route of `method` and `template` (a route template, never a request path). */
export function recognitionKeyMay(method: string, template: string): boolean {
  return ALLOWED.has(`${method} ${template}`);
}
