/** Shared scaffolding for service tests: the course images, a quiet logger, an embedded service on a free port. */
import { existsSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type Config } from "../../roles/config.ts";
import { captureLogs, type LogCapture } from "../support/logs.ts";
import { startEmbedded, type RunningRoles } from "../../roles/start.ts";
import { apiTokenFile } from "../../roles/web/api-token.ts";

export { captureLogs };

export const DATASETS = join(import.meta.dir, "..", "..", "..", "shared", "datasets");
const COURSE_DIR = join(DATASETS, "cse546");
export const HAVE_COURSE = existsSync(join(COURSE_DIR, "face_images_100"));
if (!HAVE_COURSE) console.warn(`skipping service tests that need the course images: ${COURSE_DIR} is absent`);

export interface LabelledImage {
  name: string;
  file: string;
  person: string;
}

/** The course's labelled images: `Image,Results` rows joined with the files of one folder. */
export function courseImages(set: "100" | "1000"): LabelledImage[] {
  const labels = readFileSync(join(COURSE_DIR, `labels_${set}.csv`), "utf8")
    .trim()
    .split("\n")
    .slice(1);
  const folder = join(COURSE_DIR, `face_images_${set}`);
  const files = new Set(readdirSync(folder));
  return labels.map((row) => {
    const [name, person] = row.trim().split(",") as [string, string];
    if (!files.has(`${name}.jpg`)) throw new Error(`no image for ${name}`);
    return { name, file: join(folder, `${name}.jpg`), person };
  });
}

export interface EmbeddedService extends RunningRoles {
  url: string;
  config: Config;
  logs: LogCapture;
  /** The header the admin routes need: the configured token, else the one generated in the data directory. */
  auth: { authorization: string };
}

export async function startService(overrides: Partial<Config> = {}, dataDir = mkdtempSync(join(tmpdir(), "facefleet-"))): Promise<EmbeddedService> {
  const config = loadConfig({}, { host: "127.0.0.1", port: 0, dataDir, controllerIntervalMs: 50, scaleInAfterMs: 300, ...overrides });
  const logs = captureLogs();
  const running = await startEmbedded(config, logs.logger);
  const token = config.apiToken ?? readFileSync(apiTokenFile(dataDir), "utf8").trim();
  return { ...running, url: `http://127.0.0.1:${running.port}`, config, logs, auth: { authorization: `Bearer ${token}` } };
}

export function upload(field: string, bytes: Uint8Array | string, fileName: string, type = "image/jpeg"): FormData {
  const form = new FormData();
  form.append(field, new File([bytes], fileName, { type }));
  return form;
}

export async function postImage(url: string, file: string, fileName = file.split("/").pop()!): Promise<Response> {
  return fetch(`${url}/`, { method: "POST", body: upload("inputFile", await Bun.file(file).bytes(), fileName) });
}
