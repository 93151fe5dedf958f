/**
 * The API's documentation: OpenAPI 3 generated from the routes' TypeBox schemas at `/openapi/json`, and Swagger UI
 * at `/docs` with its script and style served from the `swagger-ui-dist` package, so the page works offline.
 */
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import { packageFile, staticFiles } from "./assets.ts";
import type { UploadLimits } from "./upload.ts";

export const OPENAPI_PATH = "/openapi/json";
const VIEWER_SCRIPT = "/docs/assets/swagger-ui-bundle.js";
const VIEWER_STYLE = "/docs/assets/swagger-ui.css";

/** `limits`: the upload limits in force, which the document states. */
export function apiDocs(limits: Pick<UploadLimits, "maxFileBytes" | "maxBodyBytes">) {
  return new Elysia({ name: "api-docs", seed: limits })
    .use(
      openapi({
        path: "/docs",
        specPath: OPENAPI_PATH,
        provider: "swagger-ui",
        // validatorUrl "none": Swagger UI would otherwise load a badge from validator.swagger.io (for any host but localhost).
        swagger: { cdn: VIEWER_SCRIPT, theme: VIEWER_STYLE, autoDarkMode: false, persistAuthorization: true, validatorUrl: "none" },
        documentation: {
          info: {
            title: "facefleet",
            // The API's version, as in its /v1 prefix (the runtime imports nothing outside roles/ and model/).
            version: "1",
            description:
              "Face recognition through a queue to an elastic fleet. The classic contract (`POST /`) answers text; everything under `/v1` needs the bearer token. " +
              `Uploads: each file at most ${limits.maxFileBytes} bytes (FACEFLEET_MAX_UPLOAD_BYTES; past it 413 file_too_large, for that part alone in a multi-part enrollment), ` +
              `each request body at most ${limits.maxBodyBytes} bytes (FACEFLEET_MAX_BODY_BYTES; past it 413 body_too_large), both refused from content-length before the body is read, or as a chunked body passes them.`,
          },
          components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
        },
      }),
    )
    .use(staticFiles("docs", { [VIEWER_SCRIPT]: packageFile("swagger-ui-dist/swagger-ui-bundle.js"), [VIEWER_STYLE]: packageFile("swagger-ui-dist/swagger-ui.css") }));
}
