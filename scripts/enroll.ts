/**
 * Enrolls faces through the HTTP API (`POST {url}/v1/subjects/{name}/faces`, multipart field `image`):
 *   bun run scripts/enroll.ts --url URL --labels CSV --images DIR   (course `Image,Results` CSV)
 *   bun run scripts/enroll.ts --url URL --dir DIR                   (one folder per person, LFW layout)
 * The bearer token: --token, else FACEFLEET_API_TOKEN, else the embedded service's <data dir>/api-token.
 * Optional --concurrency (default 8), --face single|largest (default largest: the largest face of a group photo is
 * enrolled), --strict (a refused photo is an error). A photo the service refuses (422: no_face, multiple_faces,
 * face_too_small, low_quality) is reported with its reason and stored nowhere; the run still exits 0 unless --strict.
 * Any other failure exits 1.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { bearerHeader, clientApiToken } from "./api-token.ts";
import { readCourseLabels } from "./course-labels.ts";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "http://localhost:8000" },
    labels: { type: "string" },
    images: { type: "string" },
    dir: { type: "string" },
    token: { type: "string" },
    concurrency: { type: "string", default: "8" },
    face: { type: "string", default: "largest" },
    strict: { type: "boolean", default: false },
  },
});

interface Enrollment {
  subject: string;
  file: string;
}

function fromLabels(labelsPath: string, imagesDir: string): Enrollment[] {
  const files = readdirSync(imagesDir);
  return [...readCourseLabels(labelsPath)].map(([image, subject]) => {
    const file = files.find((f) => f.replace(/\.[^.]*$/, "") === image);
    if (!file) throw new Error(`no image for ${image} in ${imagesDir}`);
    return { subject, file: join(imagesDir, file) };
  });
}

function fromFolders(dir: string): Enrollment[] {
  return readdirSync(dir)
    .filter((subject) => statSync(join(dir, subject)).isDirectory())
    .flatMap((subject) =>
      readdirSync(join(dir, subject))
        .filter((file) => /\.(jpe?g|png|webp)$/i.test(file))
        .map((file) => ({ subject, file: join(dir, subject, file) })),
    );
}

const enrollments = args.dir ? fromFolders(args.dir) : args.labels && args.images ? fromLabels(args.labels, args.images) : undefined;
if (!enrollments) {
  console.error("usage: bun run scripts/enroll.ts --url URL (--labels CSV --images DIR | --dir DIR) [--token T] [--face single|largest] [--strict]");
  process.exit(2);
}
if (args.face !== "single" && args.face !== "largest") {
  console.error(`--face must be single or largest, not ${args.face}`);
  process.exit(2);
}

const token = clientApiToken(args.token);
let next = 0;
let enrolled = 0;
const failures: string[] = [];
const refusals: string[] = [];
let unauthorized = false;
async function worker(): Promise<void> {
  while (next < enrollments!.length) {
    const { subject, file } = enrollments![next++]!;
    const form = new FormData();
    form.append("image", new File([await Bun.file(file).bytes()], file.split("/").pop()!));
    const response = await fetch(`${args.url}/v1/subjects/${encodeURIComponent(subject)}/faces?face=${args.face}`, {
      method: "POST",
      body: form,
      headers: bearerHeader(token),
    });
    if (response.ok) enrolled++;
    else if (response.status === 422) {
      const { error, message } = (await response.json()) as { error: string; message: string };
      refusals.push(`${file}: refused (${error}): ${message}`);
    } else failures.push(`${file}: HTTP ${response.status} ${await response.text()}`);
    if (response.status === 401) unauthorized = true;
  }
}
await Promise.all(Array.from({ length: Math.max(1, Number(args.concurrency)) }, worker));
for (const refusal of refusals) console.error(refusal);
for (const failure of failures) console.error(failure);
if (unauthorized) console.error(`the service refused the bearer token from ${token.source}: pass --token or set FACEFLEET_API_TOKEN`);
const subjects = new Set(enrollments.map((e) => e.subject)).size;
console.log(`enrolled ${enrolled} of ${enrollments.length} faces of ${subjects} subjects`);
console.log(JSON.stringify({ faces: enrollments.length, enrolled, refused: refusals.length, failed: failures.length, subjects }));
process.exit(failures.length > 0 || (args.strict && refusals.length > 0) ? 1 : 0);
