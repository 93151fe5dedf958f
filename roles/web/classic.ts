/** The classic contract: `POST /` with multipart `inputFile`, answered `200 text/plain` `<name>:<person>`. */
import { Elysia, t } from "elysia";
import type { Logger } from "../log.ts";
import { clientOf } from "./client-address.ts";
import { ClientRateLimit } from "./client-rate.ts";
import { HttpError } from "./http-error.ts";
import type { JobSubmitter } from "./jobs.ts";
import { requestId } from "./request-id.ts";
import { streamedBody, type UploadReader } from "./upload.ts";

export interface ClassicOptions {
  jobs: JobSubmitter;
  uploads: UploadReader;
  log: Logger;
  /** Requests a second one client may send (FACEFLEET_CLASSIC_RATE_LIMIT); 0 or unset: no limit. */
  rateLimit?: number;
}

export function classicContract(options: ClassicOptions) {
  const rateLimit = options.rateLimit ? new ClientRateLimit(options.rateLimit) : undefined;
  return new Elysia({ name: "classic-contract" })
    .use(requestId)
    .post(
      "/",
      async ({ request, requestId }) => {
        const waitMs = rateLimit?.take(clientOf(request), performance.now()) ?? 0;
        if (waitMs > 0) {
          throw new HttpError(429, "rate_limited", `this address may send ${options.rateLimit} requests a second here; try again in ${waitMs} ms`, {
            headers: { "retry-after": String(Math.ceil(waitMs / 1000)) },
          });
        }
        const upload = await options.uploads.readOne(request, requestId, "inputFile");
        const started = performance.now();
        const reply = await options.jobs.submit(requestId, "recognize", upload);
        options.log.info("recognized", { requestId, name: upload.name, person: reply.person, ms: Math.round(performance.now() - started) });
        return new Response(`${upload.name}:${reply.person}`, { headers: { "content-type": "text/plain; charset=utf-8" } });
      },
      {
        ...streamedBody(t.Object({ inputFile: t.File() }), { summary: "The classic contract: the person in the photo, as text", tags: ["classic"] }),
        response: { 200: t.String({ description: "`<file name without extension>:<person>` as text/plain", examples: ["test_00:Paul"] }) },
      },
    );
}
