// The embedded default over HTTP with the real model: the classic contract, correlation under load, the subjects API,
// and the local fleet scaled 0 -> N -> 0 by the controller. Bad input, code by code, is tested without datasets in
// tests/web/. The photos are the sample set of tests/fixtures.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import sharp from "sharp";
import { enrollmentPhotos, queryPhotos, queryRequests } from "../support/fixtures.ts";
import { postImage, startService, upload, type EmbeddedService } from "./support.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

const TOKEN = "test-token";

describe("embedded service", () => {
  let service: EmbeddedService;
  const images = queryPhotos();
  const enrolled = enrollmentPhotos();
  const auth = { authorization: `Bearer ${TOKEN}` };

  beforeAll(async () => {
    service = await startService({ apiToken: TOKEN, maxUploadBytes: 256 * 1024 });
  });
  afterAll(() => service?.stop());

  const runningInstances = async () =>
    (await service.context.cloud.fleet.list()).filter((instance) => instance.state === "running" || instance.state === "pending").length;

  test("with nobody enrolled, the classic endpoint says so", async () => {
    const response = await postImage(service.url, images[0]!.file);
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ error: "no_subjects_enrolled" });
  });

  test("the subjects API needs the bearer token", async () => {
    expect((await fetch(`${service.url}/v1/subjects`)).status).toBe(401);
    const form = upload("image", await Bun.file(enrolled[0]!.file).bytes(), "x.jpg");
    expect((await fetch(`${service.url}/v1/subjects/${enrolled[0]!.person}/faces`, { method: "POST", body: form })).status).toBe(401);
    // The token is checked before anything else about the route (a path not in canonical form is refused before routing).
    expect((await fetch(`${service.url}/v1/subjects/${"x".repeat(500)}`, { method: "DELETE" })).status).toBe(401);
    expect((await fetch(`${service.url}/v1/subjects/%00`, { method: "DELETE" })).status).toBe(400);
    const wrong = await fetch(`${service.url}/v1/subjects`, { headers: { authorization: "Bearer wrong-token" } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("enrolls the sample set's people through the subjects API", async () => {
    for (const image of enrolled) {
      const form = upload("image", await Bun.file(image.file).bytes(), `${image.name}.jpg`);
      const response = await fetch(`${service.url}/v1/subjects/${image.person}/faces`, { method: "POST", body: form, headers: auth });
      expect(response.status).toBe(201);
      expect(await response.json()).toMatchObject({ subject: image.person });
    }
    const listed = (await (await fetch(`${service.url}/v1/subjects`, { headers: auth })).json()) as { subjects: { name: string; faces: number }[] };
    expect(listed.subjects.map((s) => s.name).sort()).toEqual([...new Set(enrolled.map((i) => i.person))].sort());
  });

  test("classic contract: text/plain <name>:<person>, and the result lands in the output bucket", async () => {
    const response = await postImage(service.url, images[0]!.file);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("text/plain");
    expect(await response.text()).toBe(`${images[0]!.name}:${images[0]!.person}`);
    const outBucket = service.context.cloud.blobs.bucket(service.context.names.outBucket);
    expect(new TextDecoder().decode(await outBucket.get(images[0]!.name))).toBe(images[0]!.person);
    const record = JSON.parse(decodeURIComponent((await outBucket.metadata(images[0]!.name))!.result!));
    expect(record).toMatchObject({ faceCount: 1, faces: [{ person: images[0]!.person, known: expect.any(Boolean) }] });
    expect(record.faces[0].similarity).toBeGreaterThan(0.9);
    expect(Object.keys(record.timingsMs)).toEqual(expect.arrayContaining(["decodeMs", "detectMs", "alignMs", "embedMs"]));
  });

  test("the JSON API with the real model: recognize, detect and verify agree with the classic answer and with each other", async () => {
    const image = images[0]!;
    const bytes = await Bun.file(image.file).bytes();
    const { width, height } = await sharp(bytes).metadata();
    const recognized = (await (
      await fetch(`${service.url}/v1/recognize?mode=closed&k=2`, { method: "POST", body: upload("image", bytes, "a.jpg"), headers: auth })
    ).json()) as { width: number; height: number; faces: { box: { x: number; y: number; width: number; height: number }; landmarks: number[][]; match: { subject: string }; candidates: unknown[] }[] };
    expect(recognized).toMatchObject({ width, height });
    const [face] = recognized.faces;
    expect(face!.match.subject).toBe(image.person);
    expect(face!.candidates.length).toBeLessThanOrEqual(2);
    expect(face!.landmarks).toHaveLength(5);
    // Pixel coordinates of the image: the box and every landmark lie within its pixels.
    expect(face!.box.x).toBeGreaterThanOrEqual(0);
    expect(face!.box.x + face!.box.width).toBeLessThanOrEqual(width + 0.5);
    for (const [x, y] of face!.landmarks) expect(x! >= 0 && x! <= width && y! >= 0 && y! <= height).toBe(true);

    const detected = (await (await fetch(`${service.url}/v1/detect`, { method: "POST", body: upload("image", bytes, "a.jpg"), headers: auth })).json()) as {
      faces: { box: unknown; quality: { sharpness: number; brightness: number; size: number } }[];
    };
    expect(detected.faces[0]!.box).toEqual(face!.box);
    expect(detected.faces[0]!.quality.size).toBeCloseTo(Math.min(face!.box.width, face!.box.height), 0);

    const pair = new FormData();
    pair.append("image1", new File([bytes], "a.jpg"));
    pair.append("image2", new File([bytes], "b.jpg"));
    const verified = await (await fetch(`${service.url}/v1/verify`, { method: "POST", body: pair, headers: auth })).json();
    expect(verified).toMatchObject({ same: true, faces: { image1: face!.box, image2: face!.box } });
  });

  test("a long file name in any script is cut to fit the job message, never split mid-character", async () => {
    const longName = "名".repeat(150);
    const response = await postImage(service.url, images[0]!.file, `${longName}.jpg`);
    expect(response.status).toBe(200);
    const [name, person] = (await response.text()).split(":");
    expect(Buffer.byteLength(name!)).toBeLessThanOrEqual(200);
    expect(longName.startsWith(name!)).toBe(true);
    expect(person).toBe(images[0]!.person);
  });

  test("a photo with no face: the classic answer is Unknown even closed-set, not the subject nearest to the whole image", async () => {
    const grey = new Uint8Array(await sharp({ create: { width: 160, height: 160, channels: 3, background: { r: 120, g: 110, b: 100 } } }).jpeg().toBuffer());
    const response = await fetch(`${service.url}/`, { method: "POST", body: upload("inputFile", grey, "wall.jpg") });
    expect(`${response.status} ${await response.text()}`).toBe("200 wall:Unknown");
    const recognized = await fetch(`${service.url}/v1/recognize`, { method: "POST", body: upload("image", grey, "wall.jpg"), headers: auth });
    expect(((await recognized.json()) as { faces: unknown[] }).faces).toEqual([]);
  });

  test("control characters in a file name become underscores in the answer", async () => {
    const response = await postImage(service.url, images[0]!.file, `a\u0001b\u0007c.jpg`);
    expect(await response.text()).toBe(`a_b_c:${images[0]!.person}`);
  });

  test("100 concurrent requests each get their own answer; the fleet scales 0 -> N -> 0", async () => {
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await runningInstances());
        await Bun.sleep(10);
      }
    })();
    const answers = await Promise.all(
      queryRequests(100).map(async (image) => {
        const response = await postImage(service.url, image.file, `${image.name}.jpg`);
        return { status: response.status, body: await response.text(), expected: `${image.name}:${image.person}` };
      }),
    );
    const drainedAt = performance.now();
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.body).toBe(answer.expected);
    }
    while ((await runningInstances()) > 0 && performance.now() - drainedAt < 5000) await Bun.sleep(20);
    sampling = false;
    await sampler;
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(service.config.maxAppInstances);
    expect(await runningInstances()).toBe(0);
    expect(performance.now() - drainedAt).toBeLessThan(2000);
  });

  test("read your writes on every app instance: a recognition sent after a removal or an enrollment was answered sees it, on at least two instances", async () => {
    const asked = images[0]!;
    const other = images.find((image) => image.person !== asked.person)!;
    // Other traffic keeps several instances running, each holding the gallery it last looked at.
    let busy = true;
    const background = (async () => {
      while (busy) await Promise.all([1, 2, 3].map(() => postImage(service.url, other.file).then((response) => response.text())));
    })();
    /** The app instances whose log says they did one of `jobIds` (a classic request's job id is its request id). */
    const answeredBy = (jobIds: Set<string>) =>
      new Set(service.logs.lines.filter((line) => line.event === "job_done" && jobIds.has(line.jobId as string) && typeof line.instanceId === "string").map((line) => line.instanceId));
    /**
     * The person named in each answer to rounds of six classic requests of the asked photo, sent until at least two app
     * instances answered them (one round's answers may all come from one instance).
     */
    const answers = async () => {
      const persons: string[] = [];
      const jobIds = new Set<string>();
      const deadline = performance.now() + 10_000;
      do {
        await Promise.all(
          Array.from({ length: 6 }, async () => {
            const response = await postImage(service.url, asked.file);
            jobIds.add(response.headers.get("x-request-id")!);
            persons.push((await response.text()).split(":")[1]!);
          }),
        );
      } while (answeredBy(jobIds).size < 2 && performance.now() < deadline);
      expect(answeredBy(jobIds).size).toBeGreaterThan(1);
      return persons;
    };
    try {
      // With the analysis cache a round takes milliseconds, less than the controller needs to scale out: the rounds
      // start once several instances run (instances of the previous test's scale-in may still answer a poll, too).
      const deadline = performance.now() + 10_000;
      while ((await runningInstances()) < 2 && performance.now() < deadline) await Bun.sleep(20);
      expect(await runningInstances()).toBeGreaterThan(1);
      expect(new Set(await answers())).toEqual(new Set([asked.person]));
      expect((await fetch(`${service.url}/v1/subjects/${asked.person}`, { method: "DELETE", headers: auth })).status).toBe(200);
      expect((await answers()).filter((person) => person === asked.person)).toEqual([]);
      for (const photo of enrolled.filter((photo) => photo.person === asked.person)) {
        const form = upload("image", await Bun.file(photo.file).bytes(), `${photo.name}.jpg`);
        expect((await fetch(`${service.url}/v1/subjects/${photo.person}/faces`, { method: "POST", body: form, headers: auth })).status).toBe(201);
      }
      expect(new Set(await answers())).toEqual(new Set([asked.person]));
    } finally {
      busy = false;
      await background;
    }
  });

  test("removing a subject: 404 for an unknown one, gone from the list after", async () => {
    expect((await fetch(`${service.url}/v1/subjects/Nobody`, { method: "DELETE", headers: auth })).status).toBe(404);
    const person = enrolled[0]!.person;
    const removed = await fetch(`${service.url}/v1/subjects/${person}`, { method: "DELETE", headers: auth });
    expect(removed.status).toBe(200);
    const listed = (await (await fetch(`${service.url}/v1/subjects`, { headers: auth })).json()) as { subjects: { name: string }[] };
    expect(listed.subjects.map((s) => s.name)).not.toContain(person);
  });

  test("health", async () => {
    const response = await fetch(`${service.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: "ok" });
  });
});
