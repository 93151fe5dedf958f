/**
 * The fuzzer's cases, case `index` of a seed always the same: hostile images sent to every upload route (anonymous
 * and with the admin token), and malformed requests (bad Host headers, non-canonical paths, unknown methods, query
 * numbers spelled loosely, broken multipart framing, bodies that trickle, and a burst of trickling bodies beside ordinary requests).
 */
import { mutateImage, type ImageFormat, type ImageLimits, type Seed } from "./images.ts";
import { Prng } from "./prng.ts";
import { bytesOf, concatBytes } from "./bytes.ts";
import { multipartBody, rawExchange, requestBytes, type Part, type RawOutcome, type RawRequest, type RawStep } from "./raw-http.ts";

/** A route that takes images, as the OpenAPI document lists it. */
export interface UploadRoute {
  method: string;
  /** With `{name}`-style path parameters. */
  path: string;
  /** The multipart fields that take a file. */
  fileFields: string[];
  /** A field that takes several files (up to a limit). */
  repeatable: boolean;
  queryParameters: string[];
}

export interface FuzzTarget {
  port: number;
  token: string;
  routes: UploadRoute[];
  /** Names enrolled in the gallery. */
  subjects: string[];
  seeds: Seed[];
  limits: ImageLimits;
  timeoutMs: number;
  /** Upload bodies the service reads at once: the trickling burst sends a few more. */
  uploadSlots: number;
}

export interface CaseOutcome extends RawOutcome {
  /** A number the service must refuse with 400 invalid_parameter: any other answer took a loose spelling. */
  looseNumber?: boolean;
  /** Sent without the token to a route under /v1 (or a spelling of one): anything but 401, a routing 404, the 400
   *  bad_request of a request refused before routing or a parser's 400 there went past the bearer guard. */
  protectedAnonymous: boolean;
  /** A valid HTTP request (whatever its image holds, however slowly it came): closing it without an answer is a failure. */
  wellFormed: boolean;
  /** An ordinary upload sent while more trickling bodies than upload slots are open: its time tells whether they starve it. */
  besideTrickles?: boolean;
}

export interface FuzzCase {
  index: number;
  /** The kind of case, for the report's tallies. */
  kind: string;
  /** What it sent, in a line. */
  description: string;
  run(): Promise<CaseOutcome[]>;
}

const MIME: Record<ImageFormat, string> = { jpeg: "image/jpeg", png: "image/png", webp: "image/webp" };
const EXTENSION: Record<ImageFormat, string> = { jpeg: "jpg", png: "png", webp: "webp" };

/** Path parameters: mostly a name that works, sometimes one a stranger would send. */
const HOSTILE_NAMES = ["..", "%2e%2e", "a%2fb", "a%5cb", "%00", "%E2%80%AE", "x".repeat(300), "%ff%fe", "con", "a b"];
/** Numbers as `Number()` reads them, not as the service takes them: every query number refuses each (roles/web/query-numbers.ts). */
const LOOSE_INTEGERS = ["1e1", "0x10", " 5", "5 ", "", "1.0", "-0", "+5", "05", "Infinity", "NaN", "99999999999999999999", "1_000", "0b1", "\uff15"];
const LOOSE_DECIMALS = ["0x0", " 0.5", "0.5 ", "", "-0", "+0.5", "Infinity", "NaN", "1_0", "1e", "e-3", "0.5.5", "0,5", "1e400", "\u0660.5"];
const HOSTILE_QUERY_VALUES = ["0", "-1", "999999", "NaN", "1e308", "", "%00", "open", "closed", "true", "[]", "x".repeat(2000), ...LOOSE_INTEGERS, ...LOOSE_DECIMALS];
const HOSTILE_FILE_NAMES = ["../../etc/passwd", "a\\b", "..", "", "x".repeat(1000), "CON", "\u202egpj.exe", "a\u0000b", "%2e%2e%2f"];

function fillPath(path: string, rng: Prng, target: FuzzTarget): string {
  return path.replace(/\{(\w+)\}/g, (_, parameter: string) => {
    if (rng.chance(0.1)) return rng.pick(HOSTILE_NAMES);
    if (parameter === "name") return path.endsWith("/faces") ? "fuzz_subject" : rng.pick(target.subjects.length > 0 ? target.subjects : ["nobody"]);
    return "x";
  });
}

function queryString(route: UploadRoute, rng: Prng): string {
  if (route.queryParameters.length === 0 || rng.chance(0.6)) return "";
  const pairs = route.queryParameters.filter(() => rng.chance(0.5)).map((name) => `${name}=${encodeURIComponent(rng.pick(HOSTILE_QUERY_VALUES))}`);
  return pairs.length > 0 ? `?${pairs.join("&")}` : "";
}

const hostHeader = (target: FuzzTarget): [string, string] => ["Host", `127.0.0.1:${target.port}`];
const close: [string, string] = ["Connection", "close"];

async function send(target: FuzzTarget, request: RawRequest | RawStep[], flags: { protectedAnonymous: boolean; wellFormed: boolean }): Promise<CaseOutcome> {
  const steps = Array.isArray(request) ? request : [requestBytes(request)];
  return { ...(await rawExchange(target.port, steps, target.timeoutMs)), ...flags };
}

const malformed = (protectedAnonymous: boolean) => ({ protectedAnonymous, wellFormed: false });
const wellFormed = (protectedAnonymous: boolean) => ({ protectedAnonymous, wellFormed: true });

function validImage(target: FuzzTarget, rng: Prng): { seed: Seed; part: (name: string) => Part } {
  const seed = rng.pick(target.seeds.filter((candidate) => !candidate.progressive));
  return { seed, part: (name) => ({ name, filename: `${seed.name}.${EXTENSION[seed.format]}`, contentType: MIME[seed.format], data: seed.bytes }) };
}

// ---------------------------------------------------------------- hostile images on every upload route.

function uploadCase(index: number, rng: Prng, target: FuzzTarget): FuzzCase {
  const route = rng.pick(target.routes);
  const anonymous = rng.chance(0.35);
  const path = fillPath(route.path, rng, target) + queryString(route, rng);
  const hostile = mutateImage(target.seeds, rng, target.limits);
  const field = rng.pick(route.fileFields);
  const files = route.repeatable && rng.chance(0.2) ? rng.between(2, 5) : 1;
  const fileName = rng.chance(0.1) ? rng.pick(HOSTILE_FILE_NAMES) : `${hostile.seed.name}-${index}.${EXTENSION[hostile.seed.format]}`;
  const contentType = rng.chance(0.1) ? rng.pick(["image/gif", "application/octet-stream", "text/html", ""]) : MIME[hostile.seed.format];
  const parts: Part[] = [];
  for (const name of route.fileFields) {
    if (name !== field) parts.push(validImage(target, rng).part(name));
    else for (let file = 0; file < files; file++) parts.push({ name, filename: fileName, contentType, data: hostile.bytes });
  }
  const boundary = `fuzz${index}x${rng.int(1e9)}`;
  const headers: [string, string][] = [hostHeader(target), close, ["Content-Type", `multipart/form-data; boundary=${boundary}`]];
  if (!anonymous) headers.push(["Authorization", `Bearer ${target.token}`]);
  const protectedAnonymous = anonymous && route.path.startsWith("/v1");
  return {
    index,
    kind: `image:${hostile.mutations[0]}`,
    description: `${route.method} ${path} ${anonymous ? "anonymous" : "admin"} ${field}=${hostile.seed.format} ${hostile.seed.name} ${hostile.mutations.join("+")} (${hostile.bytes.length} bytes${files > 1 ? ` x${files}` : ""})`,
    run: async () => [await send(target, { method: route.method, target: path, headers, body: multipartBody(boundary, parts) }, { protectedAnonymous, wellFormed: !/[\u0000-\u001f\u007f-\uffff]/.test(fileName) })],
  };
}

// ---------------------------------------------------------------- malformed requests.

const PROTECTED_TARGETS = ["/v1/subjects", "/v1/subjects/{subject}", "/v1/subjects?page=1&size=5"];
const OPEN_TARGETS = ["/", "/healthz", "/metrics", "/stats", "/docs", "/openapi/json"];

function badHostCase(index: number, rng: Prng, target: FuzzTarget): FuzzCase {
  const hosts: ([string, string][] | [])[] = [
    [["Host", ""]],
    [["Host", " "]],
    [["Host", "a b"]],
    [["Host", "[::1"]],
    [["Host", "127.0.0.1:99999"]],
    [["Host", "\x01\x02\x7f"]],
    [["Host", "x".repeat(rng.pick([300, 10_000, 70_000]))]],
    [["Host", "evil.example@127.0.0.1"]],
    [["Host", "%00"]],
    [["Host", "\xfc\xe9\xff"]],
    [["Host", "localhost:-1"]],
    [["Host", "[zz::1]:80"]],
    [],
    [hostHeader(target), ["Host", "other.example"]],
  ];
  const host = rng.pick(hosts);
  const upload = rng.chance(0.3);
  const path = upload ? "/" : rng.pick([...OPEN_TARGETS, "/v1/subjects"]);
  const boundary = `host${index}`;
  const body = upload ? multipartBody(boundary, [validImage(target, rng).part("inputFile")]) : undefined;
  const headers: [string, string][] = [...host, close, ...(upload ? [["Content-Type", `multipart/form-data; boundary=${boundary}`] as [string, string]] : [])];
  return {
    index,
    kind: "bad-host",
    description: `${upload ? "POST" : "GET"} ${path} with Host ${JSON.stringify(host.map(([, value]) => value.slice(0, 40)))}`,
    run: async () => [await send(target, { method: upload ? "POST" : "GET", target: path, headers, body }, malformed(path.startsWith("/v1")))],
  };
}

/**
 * `/v1/subjects/{name}/<action>` with the name followed by as many `\..` as climb back to the root: a WHATWG URL parser
 * reads each `\` as `/` and sees `/<action>`, which is no route; a router that splits on `/` alone sees the route with an
 * odd name. (Only such paths: climbing out of a shorter one lands on an open route, which proves nothing.)
 */
function climbOut(path: string, rng: Prng): string {
  const segments = path.split("/");
  segments[3] += rng.pick(["\\..", "\\..", "%5c..", "\\%2e%2e"]).repeat(3 + rng.int(2));
  return segments.join("/");
}

/** Spellings of a path under /v1 that a normalising server may route while a prefix check misses them. */
function nonCanonical(path: string, rng: Prng, port: number): string {
  const separator = () => rng.pick(["\\", "%5c", "%5C", "%2f", "%2F", "//", "/./", "/x/../", "/%2e/", "/%2E%2e/", "\\\\", "/;/"]);
  const spellings = [
    () => path.replace(/\//g, () => (rng.chance(0.5) ? separator() : "/")),
    () => path.replace("/v1/", `/v1${separator()}`),
    () => `${rng.pick(["//", "/./", "/x/../", "/%2e%2e/", "\\", "/%5c", "/..;/"])}${path.slice(1)}`,
    () => path.replace("/v1", rng.pick(["/V1", "/%76%31", "/v%31", "/v1%00", "/v1%20", "/v1.", "/v1;x=1"])),
    () => `${path}${rng.pick(["/", "%00", "%20", ";", "#x", "/.", "/..", "%2f"])}`,
    // Dot segments after backslashes inside one segment: a WHATWG URL parser reads them as climbing out of /v1, a router
    // that splits on "/" alone sees one odd segment.
    ...(path.split("/").length >= 5 ? [() => climbOut(path, rng), () => climbOut(path, rng), () => climbOut(path, rng)] : []),
    () => `http://127.0.0.1:${port}${path}`,
    () => `http://evil.example${path}`,
  ];
  return rng.pick(spellings)();
}

function pathCase(index: number, rng: Prng, target: FuzzTarget): FuzzCase {
  const subject = rng.pick(target.subjects.length > 0 ? target.subjects : ["nobody"]);
  const upload = rng.chance(0.5);
  const base = upload ? rng.pick(["/v1/recognize", `/v1/subjects/${subject}/verify`, `/v1/subjects/${subject}/verify`, "/v1/subjects/fuzz_subject/faces"]) : rng.pick(PROTECTED_TARGETS).replace("{subject}", subject);
  const path = nonCanonical(base, rng, target.port);
  const boundary = `path${index}`;
  const headers: [string, string][] = [hostHeader(target), close];
  let body: Uint8Array | undefined;
  if (upload) {
    headers.push(["Content-Type", `multipart/form-data; boundary=${boundary}`]);
    body = multipartBody(boundary, [validImage(target, rng).part("image")]);
  }
  const method = upload ? "POST" : rng.pick(["GET", "GET", "HEAD", "DELETE"]);
  // A DELETE is only ever aimed at a subject that does not exist: a bypass then answers 404 unknown_subject, not 401.
  const sent = method === "DELETE" ? path.replace(subject, "fuzz_nobody") : path;
  return {
    index,
    kind: "non-canonical-path",
    description: `${method} ${JSON.stringify(sent)} anonymous`,
    run: async () => [await send(target, { method, target: sent, headers, body }, malformed(true))],
  };
}

function methodCase(index: number, rng: Prng, target: FuzzTarget): FuzzCase {
  const method = rng.pick(["FOO", "PROPFIND", "TRACE", "CONNECT", "get", "G\x00T", "OPTIONS", "PATCH", "PURGE", "M".repeat(rng.pick([20, 5000])), "POST\x7f", "BREW"]);
  const path = method === "CONNECT" ? `127.0.0.1:${target.port}` : rng.pick([...OPEN_TARGETS, "/v1/subjects", "/v1/recognize", "*"]);
  return {
    index,
    kind: "unknown-method",
    description: `${JSON.stringify(method.slice(0, 20))} ${path}`,
    run: async () => [await send(target, { method, target: path, headers: [hostHeader(target), close] }, malformed(false))],
  };
}

/** Each query number of the API (from 1, or a rate or score from 0 to 1) and the routes that take it. */
const QUERY_NUMBERS: { name: string; integer: boolean; routes: string[] }[] = [
  { name: "k", integer: true, routes: ["/v1/recognize"] },
  { name: "maxFaces", integer: true, routes: ["/v1/recognize", "/v1/detect"] },
  { name: "minScore", integer: false, routes: ["/v1/recognize", "/v1/detect"] },
  { name: "far", integer: false, routes: ["/v1/recognize", "/v1/verify", "/v1/subjects/{subject}/verify"] },
  { name: "page", integer: true, routes: ["/v1/subjects"] },
  { name: "size", integer: true, routes: ["/v1/subjects"] },
];

/** One query number spelled as `Number()` would read it, with the token and a good image: 400 invalid_parameter, nothing else. */
function looseNumberCase(index: number, rng: Prng, target: FuzzTarget): FuzzCase {
  const parameter = rng.pick(QUERY_NUMBERS);
  const value = rng.pick(parameter.integer ? LOOSE_INTEGERS : LOOSE_DECIMALS);
  const route = rng.pick(parameter.routes).replace("{subject}", rng.pick(target.subjects.length > 0 ? target.subjects : ["nobody"]));
  const path = `${route}?${parameter.name}=${encodeURIComponent(value)}`;
  const headers: [string, string][] = [hostHeader(target), close, ["Authorization", `Bearer ${target.token}`]];
  const upload = route !== "/v1/subjects";
  const boundary = `number${index}`;
  const fields = route === "/v1/verify" ? ["image1", "image2"] : ["image"];
  if (upload) headers.push(["Content-Type", `multipart/form-data; boundary=${boundary}`]);
  const body = upload ? multipartBody(boundary, fields.map((field) => validImage(target, rng).part(field))) : undefined;
  const method = upload ? "POST" : "GET";
  return {
    index,
    kind: `loose-number:${parameter.name}`,
    description: `${method} ${path} admin`,
    run: async () => [{ ...(await send(target, { method, target: path, headers, body }, wellFormed(false))), looseNumber: true }],
  };
}

/** A multipart upload with broken framing, to the classic route (open) or an image route with the token. */
function framingCase(index: number, rng: Prng, target: FuzzTarget): FuzzCase {
  const classic = rng.chance(0.5);
  const path = classic ? "/" : rng.pick(["/v1/recognize", "/v1/detect", "/v1/subjects/fuzz_subject/faces"]);
  const field = classic ? "inputFile" : "image";
  const image = validImage(target, rng);
  const boundary = `frame${index}`;
  const headers: [string, string][] = [hostHeader(target), close];
  if (!classic) headers.push(["Authorization", `Bearer ${target.token}`]);
  const multipart = (value = `multipart/form-data; boundary=${boundary}`) => headers.push(["Content-Type", value]);
  const good = multipartBody(boundary, [image.part(field)]);
  const variants: [string, () => Uint8Array | RawStep[]][] = [
    ["missing boundary", () => (multipart("multipart/form-data"), good)],
    ["empty boundary", () => (multipart("multipart/form-data; boundary="), good)],
    ["other boundary", () => (multipart("multipart/form-data; boundary=nothere"), good)],
    ["boundary of 5000 characters", () => (multipart(`multipart/form-data; boundary=${"b".repeat(5000)}`), multipartBody("b".repeat(5000), [image.part(field)]))],
    ["unterminated part", () => (multipart(), multipartBody(boundary, [image.part(field)], false).subarray(0, rng.between(60, good.length)))],
    ["no closing delimiter", () => (multipart(), multipartBody(boundary, [image.part(field)], false))],
    ["huge part header", () => (multipart(), multipartBody(boundary, [{ ...image.part(field), extraHeaders: [`X-Big: ${"h".repeat(rng.pick([10_000, 1_000_000, 8_000_000]))}`] }]))],
    ["many part headers", () => (multipart(), multipartBody(boundary, [{ ...image.part(field), extraHeaders: Array.from({ length: rng.pick([1000, 50_000]), }, (_, i) => `X-H${i}: v`) }]))],
    ["many small parts", () => (multipart(), multipartBody(boundary, [...Array.from({ length: rng.pick([1000, 20_000, 100_000]) }, (_, i) => ({ name: `f${i}`, data: bytesOf("x") })), image.part(field)]))],
    ["many file parts", () => (multipart(), multipartBody(boundary, Array.from({ length: rng.pick([21, 200, 2000]) }, () => image.part(field))))],
    ["part without name", () => (multipart(), multipartBody(boundary, [{ ...image.part(field), name: undefined }]))],
    ["no blank line after part headers", () => (multipart(), concatBytes([bytesOf(`--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="a.jpg"\r\n`), image.seed.bytes, bytesOf(`\r\n--${boundary}--\r\n`)]))],
    ["huge preamble", () => (multipart(), concatBytes([new Uint8Array(rng.pick([100_000, 5_000_000])).fill(0x2d), bytesOf("\r\n"), good]))],
    ["not multipart", () => (headers.push(["Content-Type", rng.pick(["application/json", "text/plain", "image/jpeg", "application/x-www-form-urlencoded"])]), image.seed.bytes)],
    ["no content type", () => good],
    ["content-length shorter than the body", () => (multipart(), headers.push(["Content-Length", String(Math.floor(good.length / 2))]), good)],
    ["content-length past the body", () => (multipart(), headers.push(["Content-Length", String(good.length + rng.pick([1, 1000, 40_000_000]))]), good)],
    ["content-length not a number", () => (multipart(), headers.push(["Content-Length", rng.pick(["-1", "abc", "1e9", "18446744073709551617", " 12"])]), good)],
    ["two content-lengths", () => (multipart(), headers.push(["Content-Length", String(good.length)], ["Content-Length", "5"]), good)],
    ["bad chunk sizes", () => (multipart(), headers.push(["Transfer-Encoding", "chunked"]), concatBytes([bytesOf(`${rng.pick(["zz", "-1", "ffffffffffffffff", "1;x=" + "y".repeat(10_000)])}\r\n`), good.subarray(0, 100), bytesOf("\r\n0\r\n\r\n")]))],
    ["chunked and content-length", () => (multipart(), headers.push(["Transfer-Encoding", "chunked"], ["Content-Length", "10"]), concatBytes([bytesOf(`${good.length.toString(16)}\r\n`), good, bytesOf("\r\n0\r\n\r\n")]))],
  ];
  const [name, build] = rng.pick(variants);
  const built = build();
  return {
    index,
    kind: `framing:${name}`,
    description: `POST ${path} ${classic ? "anonymous" : "admin"}: ${name}`,
    run: async () => [await send(target, Array.isArray(built) ? built : { method: "POST", target: path, headers, body: built }, malformed(false))],
  };
}

/** Headers at once, then the body a few bytes at a time, up to past the service's body timeout. */
function tricklingSteps(target: FuzzTarget, rng: Prng, path: string, boundary: string, body: Uint8Array, token: boolean): RawStep[] {
  const headers: [string, string][] = [hostHeader(target), close, ["Content-Type", `multipart/form-data; boundary=${boundary}`], ["Content-Length", String(body.length)]];
  if (token) headers.push(["Authorization", `Bearer ${target.token}`]);
  const steps: RawStep[] = [requestBytes({ method: "POST", target: path, headers })];
  const pauseMs = rng.pick([250, 1000, 3000]);
  const piece = rng.pick([1, 16, 256]);
  // Enough pieces to outlast the fuzzer's own bound: the service must cut it off (or answer it) first.
  for (let at = 0, elapsed = 0; at < body.length && elapsed < target.timeoutMs + 5000; at += piece, elapsed += pauseMs) steps.push(body.subarray(at, at + piece), { pauseMs });
  return steps;
}

function slowBodyCase(index: number, rng: Prng, target: FuzzTarget): FuzzCase {
  const classic = rng.chance(0.5);
  const path = classic ? "/" : "/v1/recognize";
  const boundary = `slow${index}`;
  const body = multipartBody(boundary, [validImage(target, rng).part(classic ? "inputFile" : "image")]);
  return {
    index,
    kind: "slow-body",
    description: `POST ${path} whose body trickles`,
    run: async () => [await send(target, tricklingSteps(target, rng, path, boundary, body, !classic), wellFormed(false))],
  };
}

/** More trickling bodies than the service has upload slots, and ordinary uploads behind them: are they still served? */
function starvationCase(index: number, rng: Prng, target: FuzzTarget): FuzzCase {
  const trickles = target.uploadSlots + 4;
  const ordinary = 3;
  return {
    index,
    kind: "slot-starvation",
    description: `${trickles} trickling uploads to POST / and ${ordinary} ordinary ones 2 s later`,
    run: async () => {
      const slow = Array.from({ length: trickles }, (_, i) => {
        const boundary = `starve${index}x${i}`;
        const body = multipartBody(boundary, [validImage(target, rng).part("inputFile")]);
        return send(target, tricklingSteps(target, rng, "/", boundary, body, false), wellFormed(false));
      });
      await Bun.sleep(2000);
      const normal = Array.from({ length: ordinary }, async (_, i): Promise<CaseOutcome> => {
        const boundary = `ordinary${index}x${i}`;
        const headers: [string, string][] = [hostHeader(target), close, ["Content-Type", `multipart/form-data; boundary=${boundary}`]];
        const outcome = await send(target, { method: "POST", target: "/", headers, body: multipartBody(boundary, [validImage(target, rng).part("inputFile")]) }, wellFormed(false));
        return { ...outcome, besideTrickles: true };
      });
      return Promise.all([...slow, ...normal]);
    },
  };
}

/** One case in this many is a slot-starvation burst (it lasts about the service's body timeout). */
const STARVATION_EVERY = 200;

/** Case `index` of the run with `seed`. */
export function fuzzCase(seed: number, index: number, target: FuzzTarget): FuzzCase {
  const rng = Prng.forCase(seed, index);
  if (index % STARVATION_EVERY === STARVATION_EVERY / 2) return starvationCase(index, rng, target);
  const roll = rng.next();
  if (roll < 0.62) return uploadCase(index, rng, target);
  if (roll < 0.7) return badHostCase(index, rng, target);
  if (roll < 0.8) return pathCase(index, rng, target);
  if (roll < 0.84) return methodCase(index, rng, target);
  if (roll < 0.87) return looseNumberCase(index, rng, target);
  if (roll < 0.985) return framingCase(index, rng, target);
  return slowBodyCase(index, rng, target);
}
