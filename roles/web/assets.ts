/**
 * Files served as they are from a fixed list (the viewers' scripts from node_modules, the operator's page's own):
 * nothing is looked up from the request's path, and nothing comes from a CDN, so the pages work with no internet.
 */
import { Elysia } from "elysia";

/** The absolute path of a file an npm package ships, e.g. `uplot/dist/uPlot.iife.min.js`. */
export function packageFile(specifier: string): string {
  return Bun.resolveSync(specifier, import.meta.dir);
}

/** URL path → absolute file path; the answer's content type comes from the file's extension. */
export function staticFiles(name: string, files: Record<string, string>) {
  const app = new Elysia({ name: `static-files:${name}`, seed: files });
  for (const [urlPath, file] of Object.entries(files)) {
    const body = Bun.file(file);
    app.get(urlPath, () => new Response(body, { headers: { "content-type": body.type, "cache-control": "public, max-age=3600" } }), {
      detail: { hide: true },
    });
  }
  return app;
}
