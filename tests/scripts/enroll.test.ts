import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { apiTokenFile } from "../../roles/web/api-token.ts";
import { runScript, temporaryFolder } from "./support.ts";

interface Enrollment {
  subject: string;
  field: string;
  fileName: string;
  face: string | null;
  bytes: string;
  authorization: string | null;
}

/**
 * A stand-in for the subjects API: records every enrollment, refuses images whose content is "bad" (415), "blurred"
 * (422 low_quality), or "group" (422 multiple_faces, unless the largest face is asked for).
 */
function startStub() {
  const enrollments: Enrollment[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const match = /^\/v1\/subjects\/([^/]+)\/faces$/.exec(url.pathname);
      if (request.method !== "POST" || !match) return new Response("not found", { status: 404 });
      if (request.headers.get("authorization") === "Bearer refused") return Response.json({ error: "unauthorized" }, { status: 401 });
      const form = await request.formData();
      for (const [field, value] of form) {
        if (!(value instanceof Blob)) continue;
        const bytes = await value.text();
        if (bytes === "bad") return Response.json({ error: "not_an_image" }, { status: 415 });
        if (bytes === "blurred") return Response.json({ error: "low_quality", message: "the face is too blurred" }, { status: 422 });
        if (bytes === "group" && url.searchParams.get("face") !== "largest") {
          return Response.json({ error: "multiple_faces", message: "the photo has 2 faces" }, { status: 422 });
        }
        enrollments.push({
          subject: decodeURIComponent(match[1]!),
          field,
          fileName: (value as File).name,
          face: url.searchParams.get("face"),
          bytes,
          authorization: request.headers.get("authorization"),
        });
      }
      return Response.json({ faceId: `f${enrollments.length}` }, { status: 201 });
    },
  });
  return { server, enrollments, url: `http://127.0.0.1:${server.port}` };
}

let stub: ReturnType<typeof startStub> | undefined;
afterEach(() => stub?.server.stop(true));

const bySubject = (enrollments: Enrollment[]) => enrollments.map((e) => `${e.subject}<-${e.fileName}:${e.bytes}`).sort();

describe("enrollment client", () => {
  test("enrolls every image of a course CSV under its label, field 'image', with the bearer token", async () => {
    stub = startStub();
    const folder = temporaryFolder({
      "images/test_00.jpg": "zero",
      "images/test_01.png": "one",
      "images/test_02.jpg": "two",
      "labels.csv": "Image,Results\ntest_00,Paul\ntest_01,Emily\ntest_02,Paul\n",
    });
    const run = await runScript("enroll.ts", [
      "--url",
      stub.url,
      "--labels",
      join(folder, "labels.csv"),
      "--images",
      join(folder, "images"),
      "--token",
      "s3cret",
    ]);
    expect(run.exitCode).toBe(0);
    expect(bySubject(stub.enrollments)).toEqual(["Emily<-test_01.png:one", "Paul<-test_00.jpg:zero", "Paul<-test_02.jpg:two"]);
    expect(stub.enrollments.every((e) => e.field === "image" && e.authorization === "Bearer s3cret")).toBe(true);
    expect(run.summary).toEqual({ faces: 3, enrolled: 3, refused: 0, failed: 0, subjects: 2 });
  });

  test("--dir enrolls folders named after people (LFW layout), escaping names in the path, and reports failures", async () => {
    stub = startStub();
    const folder = temporaryFolder({
      "Ada_Lovelace/Ada_Lovelace_0001.jpg": "ada 1",
      "Ada_Lovelace/Ada_Lovelace_0002.jpg": "ada 2",
      "Ada_Lovelace/readme.txt": "skipped",
      "José Martí/José Martí_0001.jpg": "jose",
      "Broken/Broken_0001.jpg": "bad",
    });
    const run = await runScript("enroll.ts", ["--url", stub.url, "--dir", folder], { FACEFLEET_DATA_DIR: temporaryFolder({}) });
    expect(bySubject(stub.enrollments)).toEqual([
      "Ada_Lovelace<-Ada_Lovelace_0001.jpg:ada 1",
      "Ada_Lovelace<-Ada_Lovelace_0002.jpg:ada 2",
      "José Martí<-José Martí_0001.jpg:jose",
    ]);
    expect(stub.enrollments.every((e) => e.authorization === null)).toBe(true);
    expect(run.summary).toEqual({ faces: 4, enrolled: 3, refused: 0, failed: 1, subjects: 3 });
    expect(run.stderr).toContain("HTTP 415");
    expect(run.exitCode).toBe(1);
  });

  const oneImage = () => temporaryFolder({ "images/test_00.jpg": "zero", "labels.csv": "Image,Results\ntest_00,Paul\n" });
  const readmeCommand = (folder: string) => ["--url", stub!.url, "--labels", join(folder, "labels.csv"), "--images", join(folder, "images")];

  test("the README's command, unchanged, sends the token the embedded service generated in its data directory", async () => {
    stub = startStub();
    const dataDir = temporaryFolder({});
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(apiTokenFile(dataDir), "generated-token\n", { mode: 0o600 });
    const run = await runScript("enroll.ts", readmeCommand(oneImage()), { FACEFLEET_DATA_DIR: dataDir });
    expect(run.exitCode).toBe(0);
    expect(stub.enrollments.map((e) => e.authorization)).toEqual(["Bearer generated-token"]);
  });

  test("FACEFLEET_API_TOKEN comes before the data directory's file", async () => {
    stub = startStub();
    const dataDir = temporaryFolder({});
    writeFileSync(apiTokenFile(dataDir), "generated-token\n");
    await runScript("enroll.ts", readmeCommand(oneImage()), { FACEFLEET_DATA_DIR: dataDir, FACEFLEET_API_TOKEN: "from-the-environment" });
    expect(stub.enrollments.map((e) => e.authorization)).toEqual(["Bearer from-the-environment"]);
  });

  test("a refused token: the failure says where the token came from and how to pass another", async () => {
    stub = startStub();
    const run = await runScript("enroll.ts", readmeCommand(oneImage()), { FACEFLEET_API_TOKEN: "refused" });
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toContain("HTTP 401");
    expect(run.stderr).toContain("the service refused the bearer token from FACEFLEET_API_TOKEN");
  });

  test("asks for the largest face by default; a refused photo is reported with its reason and the run still exits 0, unless --strict", async () => {
    stub = startStub();
    const folder = temporaryFolder({ "Ada/Ada_1.jpg": "group", "Ada/Ada_2.jpg": "blurred", "Bob/Bob_1.jpg": "bob" });
    const run = await runScript("enroll.ts", ["--url", stub.url, "--dir", folder, "--token", "t"]);
    expect(run.exitCode).toBe(0);
    expect(stub.enrollments.map((e) => e.face)).toEqual(["largest", "largest"]);
    expect(run.summary).toEqual({ faces: 3, enrolled: 2, refused: 1, failed: 0, subjects: 2 });
    expect(run.stderr).toContain("Ada_2.jpg: refused (low_quality): the face is too blurred");

    const single = await runScript("enroll.ts", ["--url", stub.url, "--dir", folder, "--token", "t", "--face", "single"]);
    expect(single.summary).toMatchObject({ enrolled: 1, refused: 2 });
    expect(single.stderr).toContain("Ada_1.jpg: refused (multiple_faces)");
    expect(single.exitCode).toBe(0);

    const strict = await runScript("enroll.ts", ["--url", stub.url, "--dir", folder, "--token", "t", "--strict"]);
    expect(strict.exitCode).toBe(1);
  });
});
