// Hostile request lines and Host headers against a real listening server, over raw sockets (fetch would normalise
// them): a malformed Host or target gets 400 bad_request as JSON, never Bun's developer page, and leaves the in-flight
// gauge at 0; no spelling of any guarded route's path reaches its handler without the token.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { AUTH, startWebHarness, type WebHarness } from "./support.ts";

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends `head` as written, byte for byte (latin1), and reads the answer until the server closes. */
function raw(port: number, head: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, "127.0.0.1", () => socket.write(Buffer.from(head, "latin1")));
    socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer to ${JSON.stringify(head.split("\r\n")[0])}`)));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const end = text.indexOf("\r\n\r\n");
      const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
      const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]));
      resolve({ status: Number(statusLine?.split(" ")[1]), headers, body: text.slice(end + 4) });
    });
  });
}

const send = (port: number, method: string, target: string, headers: Record<string, string> = { host: "localhost" }) =>
  raw(port, `${method} ${target} HTTP/1.1\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("")}content-length: 0\r\nconnection: close\r\n\r\n`);

/** Our usual error body, the code given, with the request id of the answer's header. */
function expectErrorBody(answer: RawAnswer, code: string): void {
  expect(answer.headers["content-type"]).toStartWith("application/json");
  expect(JSON.parse(answer.body)).toEqual({ error: code, message: expect.any(String), requestId: answer.headers["x-request-id"]! });
}

let harness: WebHarness;
let port: number;
beforeAll(async () => {
  harness = await startWebHarness({ classicAuth: true });
  harness.app.listen({ hostname: "127.0.0.1", port: 0 });
  port = harness.app.server!.port!;
});
afterAll(async () => {
  await harness.app.stop();
  await harness.stop();
});

/** The after-answer hooks run once the answer is sent: wait for the gauge to settle. */
async function inFlightSettled(): Promise<number> {
  for (let attempt = 0; attempt < 50 && harness.metrics.requestsInFlightNow() !== 0; attempt++) await Bun.sleep(10);
  return harness.metrics.requestsInFlightNow();
}

describe("a malformed Host or request target", () => {
  const hosts = ["localhost#", "a/b", "", "[::1", "loc host", "ex@mple.com", "localhost\\x", "localhost:99999999", "a", "a:1"];

  test("a malformed or too short Host: 400 bad_request, the usual JSON body, never a page or a stack", async () => {
    for (const host of hosts) {
      const answer = await send(port, "GET", "/v1/subjects", { host });
      expect({ host, status: answer.status }).toEqual({ host, status: 400 });
      expectErrorBody(answer, "bad_request");
      expect(answer.body).not.toContain(process.cwd());
      expect(answer.body.length).toBeLessThan(300);
    }
  });

  test("a target Bun passes on that names no path: 400 bad_request as JSON; one it refuses itself: its bare 400", async () => {
    // HTTP/1.0 without a Host: request.url is then the bare path, which no router reads as the path.
    const noHost = await raw(port, "GET /v1/subjects HTTP/1.0\r\n\r\n");
    expect(noHost.status).toBe(400);
    expectErrorBody(noHost, "bad_request");
    for (const target of ["/v1/subjects#fragment", "/v1/subjects/Paul/faces/f1#x"]) {
      const answer = await send(port, "DELETE", target);
      expect(answer.status).toBe(400);
      expectErrorBody(answer, "bad_request");
    }
    for (const target of ["*", "v1/subjects", "/v1/subjects\tx"]) {
      const answer = await send(port, "GET", target);
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.body).not.toContain("<");
    }
  });

  test("after many malformed and refused requests the in-flight gauge is back to 0", async () => {
    for (let round = 0; round < 20; round++) {
      await send(port, "GET", "/v1/subjects", { host: hosts[round % hosts.length]! });
      await send(port, "DELETE", "/v1/subjects/x/faces/..\\..\\..\\..");
      await send(port, "GET", "/v1/subjects/%00");
    }
    expect(await inFlightSettled()).toBe(0);
  });
});

/** Whether a route needs the token: all of /v1, and the classic POST / under classicAuth. */
const isGuarded = (method: string, path: string) => path.startsWith("/v1/") || (method === "POST" && path === "/");

/** Every route of the OpenAPI document that needs the token. */
async function guardedRoutes(): Promise<{ method: string; path: string }[]> {
  const document = (await (await fetch(`http://127.0.0.1:${port}/openapi/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  return Object.entries(document.paths).flatMap(([template, operations]) =>
    Object.keys(operations)
      .map((method) => ({ method: method.toUpperCase(), path: template.replace("{name}", "Paul").replace("{faceId}", "f1") }))
      .filter(({ method, path }) => isGuarded(method, path)),
  );
}

/** The same path, spelled otherwise: what a normaliser, a router or a guard may each read another way. */
function spellings(path: string): string[] {
  const segments = path.split("/").slice(1);
  const last = segments.length - 1;
  const replaceLast = (by: string) => `/${[...segments.slice(0, last), by].join("/")}`;
  return [
    ...["\\", "%5c", "%5C", "%2f", "%2F"].map((separator) => `/${segments.join(separator)}`),
    `${path}/..\\..\\..\\..`,
    `${path}/..%5c..%5c..`,
    `${path}/%2e%2e`,
    `${path}/%2E%2E/%2e%2e`,
    `${path}/.`,
    `${path}/..`,
    `/./${segments.join("/")}`,
    `/x/../${segments.join("/")}`,
    `/${segments[0]}/../${segments.join("/")}`,
    `//${segments.join("/")}`,
    `/${segments.join("//")}`,
    `${path}/`,
    `${path}//`,
    `/V1/${segments.slice(1).join("/")}`,
    path.toUpperCase(),
    `${path};x=1`,
    `/${segments.map((segment) => `${segment};p`).join("/")}`,
    `${path}%00`,
    `${path}%00.json`,
    replaceLast("..\\..\\..\\.."),
    replaceLast("%2e%2e"),
    replaceLast("."),
    replaceLast(".."),
    replaceLast("%2e"),
    replaceLast(`${segments[last]}%2f..`),
  ];
}

describe("no spelling of a guarded route's path reaches its handler without the token", () => {
  test("the routes enumerated from /openapi/json: each answers 401 to the canonical path, and every spelling a 401 or a 400/404 from before routing", async () => {
    const routes = await guardedRoutes();
    expect(routes.length).toBeGreaterThanOrEqual(12);
    const reached: string[] = [];
    for (const { method, path } of routes) {
      // The canonical path is guarded, and opens with the token: the spellings below would tell a handler's answer.
      expect({ method, path, status: (await send(port, method, path)).status }).toEqual({ method, path, status: 401 });
      expect({ method, path, status: (await send(port, method, path, { host: "localhost", ...AUTH })).status }).not.toEqual({ method, path, status: 401 });
      const attempts: [string, Record<string, string>][] = [
        ...spellings(path).map((target): [string, Record<string, string>] => [target, { host: "localhost" }]),
        // Elysia's router reads the path from the 12th character of request.url: a short Host shifted it.
        [`/zz${path}`, { host: "a" }],
        [`/z${path}`, { host: "ab" }],
        [`http://localhost${path}`, { host: "localhost" }],
        [`http://localhost/x/..${path}`, { host: "localhost" }],
      ];
      for (const [target, headers] of attempts) {
        const answer = await send(port, method, target, headers);
        const code = answer.body.startsWith("{") ? (JSON.parse(answer.body) as { error: string }).error : "";
        const refusedBeforeHandler =
          answer.status === 401 ||
          (answer.status === 400 && (code === "bad_request" || answer.body === "")) ||
          (answer.status === 404 && code === "not_found");
        // Bun resolves backslashes and dot segments in request.url before any code sees it: a path its router did
        // not match is served as the path it resolves to, an open one (the operator's page at /) included.
        const resolved = URL.parse(target.startsWith("/") ? `http://localhost${target}` : target)?.pathname ?? path;
        const servedAsOpenRoute = answer.status === 200 && !isGuarded(method, resolved);
        if (!refusedBeforeHandler && !servedAsOpenRoute) reached.push(`${method} ${target} (Host ${headers.host}): ${answer.status} ${code}`);
      }
    }
    expect(reached).toEqual([]);
    expect(await inFlightSettled()).toBe(0);
  });

  test("the reported bypass, and a path Bun routes otherwise than its URL reads: 400 bad_request before the body is read", async () => {
    // Bun's router matched /v1/subjects/:name/faces/:faceId on the raw path; request.url reads /.
    const bypass = await send(port, "DELETE", "/v1/subjects/x/faces/..\\..\\..\\..");
    expect(bypass.status).toBe(400);
    expectErrorBody(bypass, "bad_request");
    // Routed to PATCH /v1/subjects/:name with the name ..\Paul, read as /v1/Paul: a body that is not JSON is never parsed.
    const body = "{not json";
    const rename = await raw(port, `PATCH /v1/subjects/..\\Paul HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    expect(rename.status).toBe(400);
    expectErrorBody(rename, "bad_request");
    expect(JSON.parse(rename.body).message).toContain("another route");
  });

  test("the canonical spelling with the token still reaches the handler (the refusals above are not blanket ones)", async () => {
    const deleted = await send(port, "DELETE", "/v1/subjects/Nobody/faces/f1", { host: "localhost", ...AUTH });
    expect(deleted.status).toBe(404);
    expectErrorBody(deleted, "unknown_face");
    const named = await send(port, "GET", "/v1/subjects/Ada%20Lovelace", { host: "localhost", ...AUTH });
    expectErrorBody(named, "unknown_subject");
    expect(JSON.parse(named.body).message).toContain("Ada Lovelace");
  });

  test("every path parameter of the OpenAPI document carries a pattern: none is free-form text", async () => {
    type Operation = { parameters?: { name: string; in: string; schema?: { pattern?: string } }[] };
    const document = (await (await fetch(`http://127.0.0.1:${port}/openapi/json`)).json()) as { paths: Record<string, Record<string, Operation>> };
    const parameters = Object.entries(document.paths).flatMap(([template, operations]) =>
      Object.entries(operations).flatMap(([method, operation]) =>
        (operation.parameters ?? []).filter((parameter) => parameter.in === "path").map((parameter) => ({ route: `${method} ${template}`, name: parameter.name, pattern: parameter.schema?.pattern })),
      ),
    );
    expect(parameters.length).toBeGreaterThanOrEqual(7);
    expect(parameters.filter(({ pattern }) => pattern === undefined)).toEqual([]);
  });

  test("a face id that is not the gallery's f<digits>: 400 invalid_parameter, after the token", async () => {
    const answer = await send(port, "DELETE", "/v1/subjects/Paul/faces/x1", { host: "localhost", ...AUTH });
    expect(answer.status).toBe(400);
    expectErrorBody(answer, "invalid_parameter");
    expect((await send(port, "DELETE", "/v1/subjects/Paul/faces/x1")).status).toBe(401);
  });
});

describe("a client that closes its connection before its body has arrived", () => {
  /** Headers that announce `announced` bytes, a part of them, then the connection closed. */
  function closeMidBody(path: string, headers: Record<string, string>): Promise<void> {
    return new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        const boundary = "cut";
        const part = `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xe0`;
        const head = Object.entries({ host: "localhost", "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": "100000", ...headers })
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join("");
        socket.write(Buffer.from(`POST ${path} HTTP/1.1\r\n${head}\r\n${part}`, "latin1"));
        setTimeout(() => socket.destroy(), 300);
      });
      socket.on("error", () => {});
      socket.on("close", () => resolve());
    });
  }

  test("is the client's doing: logged as a rejected request (400 client_closed), never as a 500 the service failed", async () => {
    const before = harness.logs.lines.length;
    await closeMidBody("/v1/recognize", AUTH);
    await closeMidBody("/", AUTH);
    for (let attempt = 0; attempt < 100 && harness.logs.lines.slice(before).filter((line) => line.event === "request_rejected" || line.event === "request_failed").length < 2; attempt++) await Bun.sleep(20);
    const ends = harness.logs.lines.slice(before).filter((line) => line.event === "request_rejected" || line.event === "request_failed");
    expect(ends.map(({ event, status, code, path }) => ({ event, status, code, path })).sort((a, b) => String(a.path).localeCompare(String(b.path)))).toEqual([
      { event: "request_rejected", status: 400, code: "client_closed", path: "/" },
      { event: "request_rejected", status: 400, code: "client_closed", path: "/v1/recognize" },
    ]);
    expect(await inFlightSettled()).toBe(0);
  });
});
