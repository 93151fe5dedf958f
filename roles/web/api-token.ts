/**
 * The bearer token of the subjects API and every admin route. There is always one: configured
 * (FACEFLEET_API_TOKEN), else in embedded mode a file generated on first start in the data directory, else on EC2 a
 * private object of the input bucket that bootstrap writes and the web role re-reads, so a rotation needs no restart.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Bucket } from "../cloud/types.ts";
import { ConfigError } from "../config.ts";
import { API_TOKEN_KEY } from "../deployment.ts";
import { errorFields, type Logger } from "../log.ts";

/** Where embedded mode keeps its generated token; clients on the same machine read it from here. */
export function apiTokenFile(dataDir: string): string {
  return join(dataDir, "api-token");
}

export interface ApiToken {
  /** The token a request must present now. */
  current(): string;
  stop(): void;
}

/** How often the EC2 web role looks at the token object again. */
export const TOKEN_REFRESH_MS = 60_000;

export function fixedApiToken(token: string): ApiToken {
  return { current: () => token, stop: () => {} };
}

/** Reads the data directory's token file, creating it (mode 0600, 32 random bytes) on first start. */
export function localApiToken(dataDir: string, log: Logger): ApiToken {
  const path = apiTokenFile(dataDir);
  let token = readToken(path);
  if (token === undefined) {
    token = randomBytes(32).toString("base64url");
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(path, `${token}\n`, { mode: 0o600, flag: "wx" });
      log.info("api_token_created", { path });
    } catch (error) {
      // Another process of the same data directory made it first: theirs is the token.
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      token = readToken(path);
      if (token === undefined) throw new ConfigError(`the API token file ${path} is empty: delete it to have a new one made`);
    }
  }
  chmodSync(path, 0o600);
  log.info("api_token_file", { path });
  return fixedApiToken(token);
}

function readToken(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim() || undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

export class MissingApiTokenError extends ConfigError {
  override name = "MissingApiTokenError";
}

/**
 * The token object of the input bucket, read at boot (none: the web role refuses to start) and every `refreshMs`
 * after. A failed or empty re-read keeps the token in hand, so a passing S3 fault locks nobody out.
 */
export async function bucketApiToken(bucket: Bucket, log: Logger, refreshMs = TOKEN_REFRESH_MS): Promise<ApiToken> {
  const read = async () => new TextDecoder().decode((await bucket.get(API_TOKEN_KEY)) ?? new Uint8Array()).trim() || undefined;
  const first = await read();
  if (first === undefined) {
    throw new MissingApiTokenError(
      `no API token: the web role needs the object s3://${bucket.name}/${API_TOKEN_KEY} (or FACEFLEET_API_TOKEN). ` +
        "`bun run infra/bootstrap.ts …` stores one (set FACEFLEET_API_TOKEN in its environment to choose it); see infra/README.md",
    );
  }
  let token = first;
  log.info("api_token_loaded", { bucket: bucket.name, key: API_TOKEN_KEY });
  const timer = setInterval(async () => {
    try {
      const latest = await read();
      if (latest === undefined) log.warn("api_token_missing", { bucket: bucket.name, key: API_TOKEN_KEY });
      else if (latest !== token) {
        token = latest;
        log.info("api_token_rotated", { bucket: bucket.name, key: API_TOKEN_KEY });
      }
    } catch (error) {
      log.warn("api_token_refresh_failed", errorFields(error));
    }
  }, refreshMs);
  timer.unref();
  return { current: () => token, stop: () => clearInterval(timer) };
}
