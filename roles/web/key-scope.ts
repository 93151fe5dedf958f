/**
 * Which routes a recognition key may call: those that look at a photo or an embedding and change nothing. Everything
 * else (enrollment, deletion, rename, listing subjects, key management, any route added later) needs the admin
 * token. A table of method and route template, and a pure test of a request against it.
 */

export const RECOGNITION_KEY_ROUTES: readonly { method: string; template: string }[] = [
  { method: "POST", template: "/" },
  { method: "POST", template: "/v1/recognize" },
  { method: "POST", template: "/v1/detect" },
  { method: "POST", template: "/v1/verify" },
  { method: "POST", template: "/v1/subjects/:name/verify" },
  { method: "POST", template: "/v1/search" },
];

/**
 * Whether a recognition key may call `method` on `path`: a request path, or a route template (which matches its own
 * entry). A `:param` segment matches one non-empty segment; anything else must be equal, so a path the table does
 * not name exactly (a trailing slash, an empty segment) is refused.
 */
export function recognitionKeyMay(method: string, path: string): boolean {
  const segments = path.split("/");
  return RECOGNITION_KEY_ROUTES.some((route) => {
    if (route.method !== method) return false;
    const expected = route.template.split("/");
    return expected.length === segments.length && expected.every((part, index) => (part.startsWith(":") ? segments[index] !== "" : part === segments[index]));
  });
}
