/** The web role's optional TLS: a PEM certificate and key from the configuration, both or neither, read at boot. */
import { readFileSync } from "node:fs";
import { ConfigError } from "../config.ts";

export interface TlsFiles {
  cert: string;
  key: string;
}

/** undefined for plain HTTP; throws a ConfigError that names the setting when only one is set or a file is unreadable. */
export function readTls(settings: { tlsCertFile?: string; tlsKeyFile?: string }): TlsFiles | undefined {
  const { tlsCertFile, tlsKeyFile } = settings;
  if (tlsCertFile === undefined && tlsKeyFile === undefined) return undefined;
  if (tlsCertFile === undefined || tlsKeyFile === undefined) {
    throw new ConfigError("TLS needs both tlsCertFile (FACEFLEET_TLS_CERT_FILE) and tlsKeyFile (FACEFLEET_TLS_KEY_FILE), or neither");
  }
  const read = (path: string, setting: string) => {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      throw new ConfigError(`cannot read ${setting} ${path}: ${(error as Error).message}`);
    }
    if (!text.includes("-----BEGIN ")) throw new ConfigError(`${setting} ${path} is not a PEM file`);
    return text;
  };
  return { cert: read(tlsCertFile, "tlsCertFile (FACEFLEET_TLS_CERT_FILE)"), key: read(tlsKeyFile, "tlsKeyFile (FACEFLEET_TLS_KEY_FILE)") };
}
