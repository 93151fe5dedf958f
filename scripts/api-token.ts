/**
 * The bearer token a script sends to the admin routes: --token, else FACEFLEET_API_TOKEN, else the file an embedded
 * service generated in its data directory (FACEFLEET_DATA_DIR, default ./data), so scripts on the same machine need
 * no setup.
 */
import { readFileSync } from "node:fs";
import { loadConfig } from "../roles/config.ts";
import { apiTokenFile } from "../roles/web/api-token.ts";

export interface ClientToken {
  token?: string;
  /** Where it came from, or where it was looked for: for a message when the service refuses it. */
  source: string;
}

export function clientApiToken(explicit: string | undefined, env: Record<string, string | undefined> = process.env): ClientToken {
  if (explicit) return { token: explicit, source: "--token" };
  const config = loadConfig(env);
  if (config.apiToken) return { token: config.apiToken, source: "FACEFLEET_API_TOKEN" };
  const path = apiTokenFile(config.dataDir);
  try {
    return { token: readFileSync(path, "utf8").trim() || undefined, source: path };
  } catch {
    return { source: `${path} (absent)` };
  }
}

export function bearerHeader({ token }: ClientToken): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}
