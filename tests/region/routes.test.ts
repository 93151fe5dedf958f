// Every route of the OpenAPI document, on one deployment in the emulated region with each instance held to its role's
// IAM policy (bootstrap, bake and launch as a user runs them), answers as the embedded mode answers the same calls:
// the sample set's photos with one face, the photo of two, four faces (the photo of two twice, one above the other: a
// reply over the 1 KiB a queue message holds) and none. Afterwards no object is left under `api/` or `embeddings/`.
// Then, with two app instances, read-your-writes after an enrollment and a removal on each, and ?erase=now's erasure
// from every object. Then a gallery that cannot be read: the web instance keeps it aside and starts with an empty one.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { DescribeInstancesCommand, EC2Client, StartInstancesCommand, StopInstancesCommand } from "@aws-sdk/client-ec2";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { readFileSync } from "node:fs";
import sharp from "sharp";
import { API_RESULT_KEY_PREFIX, EMBEDDING_KEY_PREFIX, GALLERY_LOG_PREFIX, LEGACY_GALLERY_KEY, UNREADABLE_GALLERY_KEY_PREFIX } from "../../roles/deployment.ts";
import { OPENAPI_PATH } from "../../roles/web/docs.ts";
import { startSimDeployment, type SimDeployment } from "../../scripts/sim-deployment.ts";
import { enrollmentPhotos, queryPhotos, STRANGERS, TWO_FACES } from "../support/fixtures.ts";
import { freePort, waitFor } from "../support/waiting.ts";
import { startService, type EmbeddedService } from "../service/support.ts";

// Bakes an image and launches instances: far over bun's default 5 s on a loaded 2-core machine.
setDefaultTimeout(120_000);

/** The admin token the operator sets before bootstrap, which stores it for the web role; the instances never see it. */
const API_TOKEN = "region-routes-test-token";
/** The default embedder's (dlib ResNet) embedding length, for /v1/search. */
const EMBEDDING_DIMENSIONS = 128;

interface Target {
  url: string;
  auth: { authorization: string };
}

type Body = FormData | Record<string, unknown>;

function call(target: Target, method: string, path: string, body?: Body): Promise<Response> {
  const json = body !== undefined && !(body instanceof FormData);
  return fetch(`${target.url}${path}`, {
    method,
    headers: json ? { ...target.auth, "content-type": "application/json" } : target.auth,
    body: json ? JSON.stringify(body) : body,
  });
}

interface Image {
  name: string;
  bytes: Uint8Array;
}

const photo = (file: string): Image => ({ name: file.split("/").pop()!, bytes: readFileSync(file) });

/** A multipart body: each image as a part named `field` (several parts with one field: a multi-part enrollment). */
function parts(...fields: [string, Image][]): FormData {
  const form = new FormData();
  for (const [field, image] of fields) form.append(field, new File([image.bytes], image.name, { type: "image/jpeg" }));
  return form;
}

/** What is compared between the two modes: ids, times and measured numbers vary; counts, names, codes and shapes do not. */
const VARYING = new Set(["requestId", "faceId", "createdAt", "timings"]);
const COUNTS = new Set(["faces", "total", "page", "removedFaces", "status"]);
function shape(value: unknown, key = ""): unknown {
  if (VARYING.has(key)) return `<${typeof value}>`;
  if (Array.isArray(value)) return value.map((item) => shape(item));
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([name, item]) => [name, shape(item, name)]));
  if (typeof value === "number") return COUNTS.has(key) && Number.isInteger(value) ? value : "<number>";
  return value;
}

interface Step {
  /** `METHOD /path/{param}` as in the OpenAPI document. */
  route: string;
  what: string;
  /** The status both modes must answer: a call broken in both would otherwise compare equal. */
  status: number;
  /** The app instance leaves its reply in the output bucket (over a queue message's 1 KiB): the region must show the put under `api/`. */
  spills?: boolean;
  send(target: Target): Promise<Response>;
  /** What of the answer's body is compared (default: the JSON body's shape, or the text). */
  view?(response: Response): Promise<unknown>;
}

const query = queryPhotos()[0]!;
const otherQuery = queryPhotos().find((other) => other.person !== query.person)!;
const enrolledOfQuery = enrollmentPhotos().find((enrolled) => enrolled.person === query.person)!;
const ONE = photo(query.file);
const TWO = photo(TWO_FACES.file);
const STRANGER = photo(STRANGERS[0]!);
let FOUR: Image;
let NONE: Image;

beforeAll(async () => {
  const pair = readFileSync(TWO_FACES.file);
  const { width, height } = await sharp(pair).metadata();
  // One above the other: side by side, the faces are too small a part of the image for the detector.
  FOUR = {
    name: "four_faces.jpg",
    bytes: await sharp({ create: { width: width!, height: height! * 2, channels: 3, background: "#808080" } })
      .composite([{ input: pair, left: 0, top: 0 }, { input: pair, left: 0, top: height! }])
      .jpeg({ quality: 90 })
      .toBuffer(),
  };
  // A smooth gradient: an image, and nothing in it a detector could take for a face.
  const gradient = Buffer.alloc(320 * 240 * 3);
  for (let i = 0; i < gradient.length; i++) gradient[i] = Math.floor(((i / 3) % 320) * 0.6) + 40;
  NONE = { name: "no_face.jpg", bytes: await sharp(gradient, { raw: { width: 320, height: 240, channels: 3 } }).jpeg().toBuffer() };
});

/** The JSON body's shape, or the text of any other. */
const answerBody = async (response: Response) => (response.headers.get("content-type")?.startsWith("application/json") ? shape(await response.json()) : response.text());
const contentType = async (response: Response) => response.headers.get("content-type")?.split(";")[0];

/**
 * A call with `far`: its operating point (both modes must hold the same calibration, so the numbers are compared, not
 * only their shape) and what it decided, after checking the rate answered is the one asked for.
 */
const operatingPoint = (far: number) => async (response: Response) => {
  const body = (await response.json()) as { threshold: number; far: number | null; same?: boolean; faces?: { match: { subject: string } | null }[] };
  expect(body.far).toBe(far);
  return { threshold: body.threshold, far: body.far, decided: body.same ?? body.faces?.map((face) => face.match?.subject ?? null) };
};

/** The faces of a subject, as the target lists them. */
async function faceIdsOf(target: Target, subject: string): Promise<string[]> {
  const listed = (await (await call(target, "GET", `/v1/subjects/${subject}`)).json()) as { faces: { faceId: string }[] };
  return listed.faces.map((face) => face.faceId);
}

/** The recognition key each target's admin made (keys are per deployment): its id and the key itself. */
const keyOf = new Map<string, { id: string; key: string }>();
const withKey = (target: Target): Target => ({ url: target.url, auth: { authorization: `Bearer ${keyOf.get(target.url)?.key}` } });

/** The calls, in order: an empty gallery, the sample set enrolled, every question, a recognition key, then renames and removals. */
function steps(): Step[] {
  const recognize = (image: Image, what: string, status = 200, spills = false): Step => ({
    route: "POST /v1/recognize",
    what,
    status,
    spills,
    send: (target) => call(target, "POST", "/v1/recognize", parts(["image", image])),
  });
  const detect = (image: Image, what: string, spills = false): Step => ({
    route: "POST /v1/detect",
    what,
    status: 200,
    spills,
    send: (target) => call(target, "POST", "/v1/detect", parts(["image", image])),
  });
  const enroll = (subject: string, images: Image[], what: string, status: number, query = ""): Step => ({
    route: "POST /v1/subjects/{name}/faces",
    what,
    status,
    send: (target) => call(target, "POST", `/v1/subjects/${subject}/faces${query}`, parts(...images.map((image): [string, Image] => ["image", image]))),
  });
  const classic = (image: Image, what: string, status: number): Step => ({
    route: "POST /",
    what,
    status,
    send: (target) => call(target, "POST", "/", parts(["inputFile", image])),
  });
  return [
    { route: "GET /healthz", what: "healthy", status: 200, send: (target) => call(target, "GET", "/healthz"), view: async (response) => ((await response.json()) as { status: string }).status },
    { route: "GET /v1/subjects", what: "nobody enrolled", status: 200, send: (target) => call(target, "GET", "/v1/subjects") },
    recognize(ONE, "one face, nobody enrolled"),
    classic(ONE, "nobody enrolled", 409),
    ...enrollmentPhotos().map((enrolled) => enroll(enrolled.person, [photo(enrolled.file)], `the sample set: ${enrolled.name}`, 201)),
    enroll("Nobody", [NONE], "no face", 422),
    enroll("Pair", [TWO], "two faces", 422),
    enroll("Pair", [TWO], "two faces, the largest", 201, "?face=largest"),
    enroll("Several", [photo(enrollmentPhotos()[0]!.file), NONE, STRANGER], "several parts, one without a face", 200),
    { route: "GET /v1/subjects", what: "the sample set and more", status: 200, send: (target) => call(target, "GET", "/v1/subjects") },
    { route: "GET /v1/subjects", what: "a page of two", status: 200, send: (target) => call(target, "GET", "/v1/subjects?page=2&size=2") },
    { route: "GET /v1/subjects/{name}", what: "a subject's faces", status: 200, send: (target) => call(target, "GET", `/v1/subjects/${query.person}`) },
    { route: "GET /v1/subjects/{name}", what: "an unknown subject", status: 404, send: (target) => call(target, "GET", "/v1/subjects/Nobody") },
    recognize(ONE, "one face"),
    recognize(STRANGER, "a stranger"),
    recognize(TWO, "two faces"),
    recognize(FOUR, "four faces", 200, true),
    recognize(NONE, "no face"),
    { ...recognize(ONE, "one face, the service's operating point"), view: operatingPoint(1e-3) },
    { ...recognize(ONE, "one face at far 1e-2"), send: (target) => call(target, "POST", "/v1/recognize?far=1e-2", parts(["image", ONE])), view: operatingPoint(1e-2) },
    { ...recognize(ONE, "a far that was not calibrated", 400), send: (target) => call(target, "POST", "/v1/recognize?far=0.002", parts(["image", ONE])) },
    detect(ONE, "one face"),
    detect(TWO, "two faces"),
    detect(FOUR, "four faces", true),
    detect(NONE, "no face"),
    ...[
      { what: "the same person", images: [ONE, photo(enrolledOfQuery.file)], status: 200 },
      { what: "two people", images: [ONE, photo(otherQuery.file)], status: 200 },
      { what: "no face in the second image", images: [ONE, NONE], status: 422 },
    ].map(({ what, images, status }): Step => ({
      route: "POST /v1/verify",
      what,
      status,
      // Each image's job replies with an embedding, which does not fit in a reply.
      spills: status === 200,
      send: (target) => call(target, "POST", "/v1/verify", parts(["image1", images[0]!], ["image2", images[1]!])),
    })),
    {
      route: "POST /v1/verify",
      what: "the same person at far 1e-4",
      status: 200,
      spills: true,
      send: (target) => call(target, "POST", "/v1/verify?far=0.0001", parts(["image1", ONE], ["image2", photo(enrolledOfQuery.file)])),
      view: operatingPoint(1e-4),
    },
    ...[
      { what: "the subject's own photo", subject: query.person, image: ONE, status: 200 },
      { what: "another person", subject: query.person, image: photo(otherQuery.file), status: 200 },
      { what: "no face", subject: query.person, image: NONE, status: 422 },
      { what: "an unknown subject", subject: "Nobody", image: ONE, status: 404 },
    ].map(({ what, subject, image, status }): Step => ({
      route: "POST /v1/subjects/{name}/verify",
      what,
      status,
      // The app scores the face against the subject and replies with a similarity, not an embedding: inline.
      send: (target) => call(target, "POST", `/v1/subjects/${subject}/verify`, parts(["image", image])),
    })),
    {
      route: "POST /v1/subjects/{name}/verify",
      what: "the subject's own photo at far 1e-2",
      status: 200,
      send: (target) => call(target, "POST", `/v1/subjects/${query.person}/verify?far=0.01`, parts(["image", ONE])),
      view: operatingPoint(1e-2),
    },
    {
      route: "POST /v1/subjects/{name}/verify",
      what: "a far that was not calibrated",
      status: 400,
      send: (target) => call(target, "POST", `/v1/subjects/${query.person}/verify?far=0.5`, parts(["image", ONE])),
    },
    ...[
      { what: "an embedding", embedding: Array.from({ length: EMBEDDING_DIMENSIONS }, (_, i) => (i % 7) - 3), status: 200 },
      { what: "the wrong dimensions", embedding: [1, 0, 0], status: 400 },
    ].map(({ what, embedding, status }): Step => ({ route: "POST /v1/search", what, status, send: (target) => call(target, "POST", "/v1/search", { embedding, k: 3 }) })),
    classic(ONE, "one face", 200),
    classic(NONE, "no face", 200),
    {
      route: "POST /v1/keys",
      what: "a recognition key, shown once",
      status: 201,
      send: async (target) => {
        const response = await call(target, "POST", "/v1/keys", { name: "kiosk" });
        const made = (await response.clone().json()) as { id: string; key: string };
        keyOf.set(target.url, { id: made.id, key: made.key });
        return response;
      },
      view: async (response) => Object.keys((await response.json()) as object).sort(),
    },
    { route: "GET /v1/keys", what: "the key, without its secret", status: 200, send: (target) => call(target, "GET", "/v1/keys"), view: async (response) => ((await response.json()) as { keys: { name: string; key?: string }[] }).keys.map((key) => [key.name, key.key]) },
    { ...recognize(ONE, "with the recognition key"), send: (target) => call(withKey(target), "POST", "/v1/recognize", parts(["image", ONE])) },
    { ...enroll("Keyed", [ONE], "with the recognition key", 403), send: (target) => call(withKey(target), "POST", "/v1/subjects/Keyed/faces", parts(["image", ONE])) },
    { route: "DELETE /v1/keys/{id}", what: "revoked", status: 200, send: (target) => call(target, "DELETE", `/v1/keys/${keyOf.get(target.url)!.id}`), view: async (response) => ((await response.json()) as { revoked: boolean }).revoked },
    { ...recognize(ONE, "with the revoked key", 401), send: (target) => call(withKey(target), "POST", "/v1/recognize", parts(["image", ONE])) },
    { route: "PATCH /v1/subjects/{name}", what: "renamed", status: 200, send: (target) => call(target, "PATCH", "/v1/subjects/Pair", { name: "Couple" }) },
    { route: "PATCH /v1/subjects/{name}", what: "onto another subject", status: 409, send: (target) => call(target, "PATCH", "/v1/subjects/Couple", { name: query.person }) },
    {
      route: "DELETE /v1/subjects/{name}/faces/{faceId}",
      what: "a face of the subject",
      status: 200,
      send: async (target) => call(target, "DELETE", `/v1/subjects/Several/faces/${(await faceIdsOf(target, "Several"))[0]}`),
    },
    {
      route: "DELETE /v1/subjects/{name}/faces/{faceId}",
      what: "another subject's face",
      status: 404,
      send: async (target) => call(target, "DELETE", `/v1/subjects/Couple/faces/${(await faceIdsOf(target, "Several"))[0]}`),
    },
    { route: "DELETE /v1/subjects/{name}", what: "a subject", status: 200, send: (target) => call(target, "DELETE", "/v1/subjects/Couple") },
    { route: "DELETE /v1/subjects/{name}", what: "an unknown subject", status: 404, send: (target) => call(target, "DELETE", "/v1/subjects/Couple") },
    {
      route: "POST /v1/gallery/import",
      what: "two faces and a line of the wrong dimension",
      status: 200,
      send: (target) =>
        fetch(`${target.url}/v1/gallery/import`, {
          method: "POST",
          headers: { ...target.auth, "content-type": "application/x-ndjson" },
          body: [1, 2, 3].map((seed) => JSON.stringify({ subject: "Imported", embedding: Array.from({ length: seed === 3 ? 3 : EMBEDDING_DIMENSIONS }, (_, i) => Math.sin(seed + i)) })).join("\n"),
        }),
    },
    {
      route: "GET /v1/gallery/export",
      what: "every face",
      status: 200,
      send: (target) => call(target, "GET", "/v1/gallery/export"),
      view: async (response) => (await response.text()).trim().split("\n").map((text) => (JSON.parse(text) as { subject: string }).subject).sort(),
    },
    // Compaction on the spot: segments rewritten, the log's embeddings erased, under the web role's grants.
    { route: "DELETE /v1/subjects/{name}", what: "imported faces, erased now", status: 200, send: (target) => call(target, "DELETE", "/v1/subjects/Imported?erase=now") },
    { route: "GET /v1/subjects", what: "after the removals", status: 200, send: (target) => call(target, "GET", "/v1/subjects") },
    { route: "GET /metrics", what: "Prometheus", status: 200, send: (target) => call(target, "GET", "/metrics"), view: contentType },
    {
      route: "GET /stats",
      what: "the operator page's figures",
      status: 200,
      send: (target) => call(target, "GET", "/stats"),
      view: async (response) => Object.keys((await response.json()) as object).sort(),
    },
  ];
}

let deployment: SimDeployment;
let embedded: EmbeddedService;
let region: Target;
let s3: S3Client;
let ec2: EC2Client;

/** Every object of `bucket` under `prefix`, listed with the SDK. */
async function keysUnder(bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((object) => object.Key!));
    token = page.NextContinuationToken;
  } while (token);
  return keys;
}

/** The deployment's settings and the region's endpoints go into this process's environment: put it back afterwards. */
const environmentBefore = { ...process.env };

beforeAll(async () => {
  embedded = await startService();
  // Bootstrap (in the deployment's scripts) stores the operator's token; the instances read it from the input bucket.
  process.env.FACEFLEET_API_TOKEN = API_TOKEN;
  deployment = await startSimDeployment({
    bootDelayMs: 0,
    startDelayMs: 0,
    pool: "cold",
    port: freePort(),
    // Two app instances, kept for the whole file once launched (the controller scales in only to 0).
    settings: { FACEFLEET_MAX_APP_INSTANCES: "2", FACEFLEET_SCALE_IN_AFTER_MS: "600000" },
  });
  region = { url: deployment.webUrl, auth: { authorization: `Bearer ${API_TOKEN}` } };
  // Two jobs waiting while no app instance runs: the controller launches both instances at once, so they boot together
  // while the first job waits anyway (nobody is enrolled yet: both are answered 409).
  const answers = await Promise.all([0, 1].map(() => call(region, "POST", "/", parts(["inputFile", ONE]))));
  expect(answers.map((answer) => answer.status)).toEqual([409, 409]);
  const client = { ...deployment.region.clientConfig };
  s3 = new S3Client({ ...client, endpoint: deployment.region.endpoints.s3, forcePathStyle: true });
  ec2 = new EC2Client({ ...client, endpoint: deployment.region.endpoints.ec2 });
}, 300_000);

afterAll(async () => {
  s3?.destroy();
  ec2?.destroy();
  await deployment?.region.stop();
  await embedded?.stop();
  for (const name of Object.keys(process.env)) if (!(name in environmentBefore)) delete process.env[name];
  Object.assign(process.env, environmentBefore);
});

describe("a deployment in the emulated region, each instance held to its role's policy", () => {
  test("every route of the web instance's OpenAPI document answers as the embedded mode does, and leaves nothing under api/ or embeddings/", async () => {
    const spec = (await (await fetch(`${region.url}${OPENAPI_PATH}`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(spec.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`));
    const plan = steps();
    // A route added to the API cannot be skipped: this test must be taught to call it.
    expect(documented.filter((route) => !plan.some((step) => step.route === route))).toEqual([]);
    expect([...new Set(plan.map((step) => step.route))].filter((route) => !documented.includes(route))).toEqual([]);

    const outBucket = deployment.names.outBucket;
    const answers: Record<string, { embedded: unknown; region: unknown }> = {};
    const notSpilled: string[] = [];
    for (const step of plan) {
      const label = `${step.route}: ${step.what}`;
      const results: Record<"embedded" | "region", unknown> = { embedded: undefined, region: undefined };
      for (const [mode, target] of [["embedded", embedded], ["region", region]] as const) {
        const requestsBefore = deployment.region.s3sqs.requests.length;
        const response = await step.send(target);
        results[mode] = { status: response.status, body: await (step.view ?? answerBody)(response) };
        if (mode === "region" && step.spills && !deployment.region.s3sqs.requests.slice(requestsBefore).some((request) => request.startsWith(`S3 PUT /${outBucket}/${API_RESULT_KEY_PREFIX}`))) {
          notSpilled.push(label);
        }
      }
      answers[label] = results;
    }
    const statuses = (mode: "embedded" | "region") => Object.fromEntries(Object.entries(answers).map(([label, results]) => [label, (results[mode] as { status: number }).status]));
    const expected = Object.fromEntries(plan.map((step) => [`${step.route}: ${step.what}`, step.status]));
    expect(statuses("embedded")).toEqual(expected);
    expect(statuses("region")).toEqual(expected);
    const bodies = (mode: "embedded" | "region") => Object.fromEntries(Object.entries(answers).map(([label, results]) => [label, results[mode]]));
    expect(bodies("region")).toEqual(bodies("embedded"));
    // The calls meant to take the output bucket's path did.
    expect(notSpilled).toEqual([]);

    expect(await keysUnder(outBucket, API_RESULT_KEY_PREFIX)).toEqual([]);
    expect(await keysUnder(deployment.names.galleryBucket, EMBEDDING_KEY_PREFIX)).toEqual([]);
  });

  test("two app instances: a recognition sent after an enrollment is answered sees it on each, after its removal none names it, and ?erase=now leaves its embedding in no object of the gallery's bucket", async () => {
    const NEWCOMER = "Newcomer";
    const asked = photo(STRANGERS[1]!);
    const answerName = asked.name.replace(/\.jpg$/, "");
    const appLogs = () => deployment.region.ec2.instances().filter((instance) => instance.tags.Role === "app" && instance.state === "running");
    /** The app instance whose log says it did job `jobId` (a classic request's job id is its request id). */
    const answeredBy = (jobId: string) =>
      appLogs().find((instance) =>
        readFileSync(instance.logPath, "utf8")
          .split("\n")
          .some((line) => line.includes('"event":"job_done"') && line.includes(`"jobId":"${jobId}"`)),
      )?.id;
    /** Classic requests of the photo, four at a time, until each running app instance answered one; every answer is `expected`'s. */
    const askUntilEachAnswered = async (expected: (answer: string) => boolean) => {
      const answered = new Set<string>();
      const jobs: string[] = [];
      const wrong: string[] = [];
      await waitFor(
        "each of two app instances to answer a recognition",
        async () => {
          const batch = await Promise.all(
            Array.from({ length: 4 }, async () => {
              const response = await call(region, "POST", "/", parts(["inputFile", asked]));
              const answer = `${response.status} ${await response.text()}`;
              if (!expected(answer)) wrong.push(answer);
              return response.headers.get("x-request-id")!;
            }),
          );
          jobs.push(...batch);
          for (const jobId of jobs) {
            const instance = answeredBy(jobId);
            if (instance) answered.add(instance);
          }
          return appLogs().length === 2 && answered.size === 2 ? true : undefined;
        },
        90_000,
        100,
      );
      expect(wrong).toEqual([]);
    };

    const phases: Record<string, number> = {};
    let phaseStart = performance.now();
    const phaseDone = (name: string) => {
      phases[name] = Math.round(performance.now() - phaseStart);
      phaseStart = performance.now();
    };
    /** Someone else named, or nobody enrolled at all (409): anything but the newcomer. */
    const notNamingNewcomer = (answer: string) => /^(200|409) /.test(answer) && !answer.startsWith(`200 ${answerName}:${NEWCOMER}`);
    // Both instances answer (launched before the first test); the subject is not enrolled yet.
    await askUntilEachAnswered(notNamingNewcomer);
    phaseDone("twoAnswering");

    expect((await call(region, "POST", `/v1/subjects/${NEWCOMER}/faces`, parts(["image", asked]))).status).toBe(201);
    await askUntilEachAnswered((answer) => answer === `200 ${answerName}:${NEWCOMER}`);
    phaseDone("enrolledSeenByEach");

    // The embedding as the gallery's log holds it, raw and in base64: the needles the erasure must leave nowhere.
    const galleryBucket = deployment.names.galleryBucket;
    const bodies = async (keys: string[]) =>
      Promise.all(keys.map(async (key) => ({ key, bytes: Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: galleryBucket, Key: key }))).Body!.transformToByteArray()) })));
    const entries = await bodies(await keysUnder(galleryBucket, GALLERY_LOG_PREFIX));
    const enrollment = entries.map(({ bytes }) => JSON.parse(bytes.toString()) as { subject?: string; embedding?: string }).find((entry) => entry.subject === NEWCOMER && entry.embedding);
    expect(enrollment).toBeDefined();
    const needles = [Buffer.from(enrollment!.embedding!, "base64"), Buffer.from(enrollment!.embedding!)];
    expect(needles[0]!.length).toBe(EMBEDDING_DIMENSIONS * 4);
    const holding = async () => (await bodies(await keysUnder(galleryBucket, ""))).filter(({ bytes }) => needles.some((needle) => bytes.includes(needle))).map(({ key }) => key);
    expect((await holding()).some((key) => key.startsWith(GALLERY_LOG_PREFIX))).toBe(true);

    expect((await call(region, "DELETE", `/v1/subjects/${NEWCOMER}?erase=now`)).status).toBe(200);
    await askUntilEachAnswered(notNamingNewcomer);
    phaseDone("removedSeenByEach");
    expect(await holding()).toEqual([]);
    console.log(`two app instances, ms per phase: ${JSON.stringify(phases)}`);
  });

  test("a legacy gallery blob that cannot be read: the restarted web instance keeps it aside, stays up and answers with the gallery it had", async () => {
    const { galleryBucket } = deployment.names;
    const garbage = new TextEncoder().encode("not a gallery at all");
    const listedBefore = (await (await call(region, "GET", "/v1/subjects")).json()) as { total: number };
    await s3.send(new PutObjectCommand({ Bucket: galleryBucket, Key: LEGACY_GALLERY_KEY, Body: garbage }));
    const web = deployment.region.ec2.instances().find((instance) => instance.tags.Role === "web+controller")!;
    await ec2.send(new StopInstancesCommand({ InstanceIds: [web.id] }));
    await deployment.region.ec2.waitForState(web.id, "stopped", 30_000);
    const logOffset = readFileSync(web.logPath).length;
    await ec2.send(new StartInstancesCommand({ InstanceIds: [web.id] }));
    const bootLog = () => readFileSync(web.logPath).subarray(logOffset).toString();
    await waitFor(
      "the restarted web instance to answer",
      async () => {
        const { Reservations } = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [web.id] }));
        const state = Reservations?.[0]?.Instances?.[0]?.State?.Name;
        if (state === "stopping" || state === "stopped") throw new Error(`the web instance's process ended at boot; its log since the restart:\n${bootLog().slice(-3000)}`);
        return fetch(`${region.url}/healthz`).then(async (response) => ((await response.text()) && response.ok ? true : undefined), () => undefined);
      },
      60_000,
      200,
    );
    // It stays up: one boot since the restart, no second.
    await Bun.sleep(1_000);
    expect(bootLog().split("\n").filter((line) => line.includes('"event":"roles_resolved"'))).toHaveLength(1);
    expect(bootLog()).toContain('"event":"gallery_unreadable"');

    // The gallery is the segmented store the routes above wrote; the blob, unreadable, is not part of it.
    const listed = await call(region, "GET", "/v1/subjects");
    expect(listed.status).toBe(200);
    expect(await listed.json()).toEqual(listedBefore);
    const aside = await keysUnder(galleryBucket, UNREADABLE_GALLERY_KEY_PREFIX);
    expect(aside).toHaveLength(1);
    const kept = await s3.send(new GetObjectCommand({ Bucket: galleryBucket, Key: aside[0]! }));
    expect(new TextDecoder().decode(await kept.Body!.transformToByteArray())).toBe("not a gallery at all");
    // Routes that need no app instance: a reply sent now could go to the stopped process's last long poll, which SQS
    // still serves (the reply would then wait out the response queue's visibility timeout). tests/service/resilience.test.ts
    // shows the next enrollment replacing a damaged gallery.
    const searched = await call(region, "POST", "/v1/search", { embedding: Array.from({ length: EMBEDDING_DIMENSIONS }, (_, i) => i + 1), k: 3 });
    expect(searched.status).toBe(200);
    expect(((await searched.json()) as { candidates: unknown[] }).candidates).toHaveLength(Math.min(3, listedBefore.total));
  });
});
