/** Shared scaffolding for service tests: a quiet logger, an embedded service on a free port, the sample set enrolled. */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type Config } from "../../roles/config.ts";
import { captureLogs, type LogCapture } from "../support/logs.ts";
import { startEmbedded, type RunningRoles } from "../../roles/start.ts";
import { apiTokenFile } from "../../roles/web/api-token.ts";
import { enrollmentPhotos } from "../support/fixtures.ts";

export { captureLogs };

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

/** Enrolls every photo of the sample set's people/ under its person through the subjects API; any refusal throws. */
export async function enrollSampleSet({ url, auth }: Pick<EmbeddedService, "url" | "auth">): Promise<void> {
  for (const photo of enrollmentPhotos()) {
    const form = upload("image", await Bun.file(photo.file).bytes(), `${photo.name}.jpg`);
    const response = await fetch(`${url}/v1/subjects/${photo.person}/faces`, { method: "POST", body: form, headers: auth });
    if (response.status !== 201) throw new Error(`enrolling ${photo.name}: ${response.status} ${await response.text()}`);
  }
}
