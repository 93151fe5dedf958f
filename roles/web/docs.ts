/**
 * The API's documentation: OpenAPI 3 generated from the routes' TypeBox schemas at `/openapi/json`, and Swagger UI
 * at `/docs` with its script and style served from the `swagger-ui-dist` package, so the page works offline. The page
 * is this plugin's own, not the OpenAPI plugin's (whose viewer starts from an inline script): a CSP that runs this
 * origin's scripts only and lets no other site frame it, and an authorization kept in the page's memory only
 * (Swagger UI's `persistAuthorization` would keep the admin token in localStorage, past the tab).
 */
import { join } from "node:path";
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import { packageFile, staticFiles } from "./assets.ts";
import type { UploadLimits } from "./upload.ts";

export const OPENAPI_PATH = "/openapi/json";
const VIEWER_SCRIPT = "/docs/assets/swagger-ui-bundle.js";
const VIEWER_STYLE = "/docs/assets/swagger-ui.css";
const VIEWER_START = "/docs/assets/viewer.js";

/** This origin only (Swagger UI's icons are data: images); no framing (clickjacking a page that holds the admin token). */
export const DOCS_CSP =
  "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** validatorUrl "none": Swagger UI would otherwise load a badge from validator.swagger.io (for any host but localhost). */
const VIEWER_OPTIONS = { url: OPENAPI_PATH, validatorUrl: "none" };

/** The options as a JSON block the viewer's start script reads; `<` escaped so no text in them can close the block. */
const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>facefleet API</title>
<link rel="stylesheet" href="${VIEWER_STYLE}">
<script src="${VIEWER_SCRIPT}" defer></script>
<script src="${VIEWER_START}" defer></script>
</head>
<body>
<div id="swagger-ui"></div>
<script type="application/json" id="viewer-options">${JSON.stringify(VIEWER_OPTIONS).replaceAll("<", "\\u003c")}</script>
</body>
</html>
`;

/** `limits`: the upload limits in force, which the document states. */
export function apiDocs(limits: Pick<UploadLimits, "maxFileBytes" | "maxBodyBytes">) {
  return new Elysia({ name: "api-docs", seed: limits })
    .use(
      openapi({
        specPath: OPENAPI_PATH,
        provider: null,
        documentation: {
          info: {
            title: "facefleet",
            // The API's version, as in its /v1 prefix (the runtime imports nothing outside roles/ and model/).
            version: "1",
            description:
              "Face recognition through a queue to an elastic fleet. The classic contract (`POST /`) answers text; everything under `/v1` needs a bearer token: " +
              "the admin token for everything, or a recognition key (made by the admin at `POST /v1/keys`) for recognize, detect, verify and search only (elsewhere 403 insufficient_scope). " +
              `Uploads: each file at most ${limits.maxFileBytes} bytes (FACEFLEET_MAX_UPLOAD_BYTES; past it 413 file_too_large, for that part alone in a multi-part enrollment), ` +
              `each request body at most ${limits.maxBodyBytes} bytes (FACEFLEET_MAX_BODY_BYTES; past it 413 body_too_large), both refused from content-length before the body is read, or as a chunked body passes them.`,
          },
          components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
        },
      }),
    )
    .get("/docs", () => new Response(DOCS_PAGE, { headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": DOCS_CSP } }), {
      detail: { hide: true },
    })
    .use(
      staticFiles("docs", {
        [VIEWER_SCRIPT]: packageFile("swagger-ui-dist/swagger-ui-bundle.js"),
        [VIEWER_STYLE]: packageFile("swagger-ui-dist/swagger-ui.css"),
        [VIEWER_START]: join(import.meta.dir, "docs", "viewer.js"),
      }),
    );
}
