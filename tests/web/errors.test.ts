// The error mapping on its own: each failure's status and code, and nothing underneath it in the answer.
import { describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import { GalleryError } from "../../roles/gallery-store.ts";
import { errorMapping } from "../../roles/web/errors.ts";
import { HttpError } from "../../roles/web/http-error.ts";
import { JobRefusedError, JobTimeoutError } from "../../roles/web/jobs.ts";
import { createLogger } from "../../roles/log.ts";
import { captureLogs, request } from "./support.ts";

const ARN = "arn:aws:iam::123456789012:role/facefleet-web";
const SDK_MESSAGE = `User: ${ARN} is not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::myfaces-out-bucket/gallery/gallery.bin"`;

class AccessDenied extends Error {
  override name = "AccessDenied";
  readonly $metadata = { httpStatusCode: 403, requestId: "SDKREQ123" };
}

function appThrowing(error: () => unknown) {
  const logs = captureLogs();
  const app = new Elysia()
    .use(errorMapping(logs.logger))
    .get("/", () => {
      throw error();
    })
    .get("/items/:id", ({ params }) => params.id, { params: t.Object({ id: t.Numeric() }) });
  return { app, logs };
}

describe("error mapping", () => {
  const cases: [string, () => unknown, number, string][] = [
    ["an HttpError renders itself", () => new HttpError(404, "unknown_subject", "no subject named 'x'"), 404, "unknown_subject"],
    ["a gallery whose embedding is missing", () => new GalleryError("embedding_missing", "the app role's embedding is missing"), 502, "embedding_missing"],
    ["a gallery of another dimension", () => new GalleryError("embedding_mismatch", "re-enroll"), 409, "embedding_mismatch"],
    ["no reply in time", () => new JobTimeoutError(1000), 504, "timeout"],
    ["nobody enrolled", () => new JobRefusedError("no_subjects_enrolled", "nobody is enrolled yet"), 409, "no_subjects_enrolled"],
    ["no face", () => new JobRefusedError("no_face", "no face found in the image"), 422, "no_face"],
    ["an image the app instance could not decode", () => new JobRefusedError("truncated", "the image is truncated"), 400, "truncated"],
  ];
  for (const [what, error, status, code] of cases) {
    test(`${what}: ${status} ${code}`, async () => {
      const response = await appThrowing(error).app.handle(request("/"));
      expect(response.status).toBe(status);
      expect(await response.json()).toEqual({ error: code, message: expect.any(String), requestId: response.headers.get("x-request-id")! });
    });
  }

  test("a bad path parameter: 400 invalid_parameter", async () => {
    const response = await appThrowing(() => undefined).app.handle(request("/items/abc"));
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: "invalid_parameter" });
  });

  const leaks: [string, () => unknown, number, string][] = [
    ["a storage fault (an SDK error naming an account, a role and a bucket)", () => new AccessDenied(SDK_MESSAGE), 500, "internal_error"],
    [
      "a job that failed on every try, for a reason an SDK wrote",
      () => new JobRefusedError("job_failed", `the job failed 3 times and was set aside: ${SDK_MESSAGE}`),
      500,
      "job_failed",
    ],
    [
      "an app instance's refusal with a code the web role does not know",
      () => new JobRefusedError("input_missing", `no object in ${ARN}`),
      500,
      "internal_error",
    ],
    [
      "an HttpError whose cause is an SDK error",
      () => new HttpError(502, "upstream", "the store did not answer", { cause: new AccessDenied(SDK_MESSAGE) }),
      502,
      "upstream",
    ],
    ["something thrown that is not an Error", () => SDK_MESSAGE, 500, "internal_error"],
  ];
  for (const [what, error, status, code] of leaks) {
    test(`${what}: ${status} ${code}, its text only in the log under the request id`, async () => {
      const { app, logs } = appThrowing(error);
      const response = await app.handle(request("/"));
      expect(response.status).toBe(status);
      const text = await response.text();
      const body = JSON.parse(text) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(["error", "message", "requestId"]);
      expect(body).toMatchObject({ error: code, requestId: response.headers.get("x-request-id")! });
      for (const secret of ["arn:", "123456789012", "facefleet-web", "myfaces-out-bucket", "AccessDenied", "not authorized", "SDKREQ123", "at "]) {
        expect(text).not.toContain(secret);
      }
      const logged = logs.lines.find((line) => line.event === "request_failed");
      expect(logged).toMatchObject({ requestId: body.requestId, status, code });
      expect(JSON.stringify(logged)).toContain(ARN);
    });
  }

  test("the mapping cannot throw: with a logger that fails and a URL that does not parse, still 500 internal_error as JSON, and the hooks after the answer run", async () => {
    const failing = createLogger({}, () => {
      throw new Error("the log cannot be written");
    });
    let answered = 0;
    const app = new Elysia()
      .use(errorMapping(failing))
      .onAfterResponse({ as: "global" }, () => {
        answered++;
      })
      .get("/", () => {
        throw new HttpError(404, "unknown_subject", "no subject named 'x'");
      });
    const response = await app.handle(request("/"));
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: "internal_error", message: "internal error", requestId: response.headers.get("x-request-id")! });
    await Bun.sleep(10);
    expect(answered).toBe(1);
    // request.url is the bare path when the Host header is malformed: logged as it is, never parsed.
    const logs = captureLogs();
    const relative = await new Elysia().use(errorMapping(logs.logger)).onRequest(({ request }) => {
      Object.defineProperty(request, "url", { value: "/v1/subjects" });
      throw new HttpError(400, "bad_request", "the request's Host or target is malformed");
    }).handle(request("/x"));
    expect(relative.status).toBe(400);
    expect(logs.lines).toContainEqual(expect.objectContaining({ event: "request_rejected", path: "/v1/subjects", code: "bad_request" }));
  });
});
