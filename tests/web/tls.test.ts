// Optional TLS on the web role: a self-signed certificate made here with openssl; both files or neither, checked at boot.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localCloud } from "../../roles/cloud/index.ts";
import { ConfigError, loadConfig, resourceNames, type Config } from "../../roles/config.ts";
import type { RoleContext } from "../../roles/context.ts";
import { imageInspector } from "../../roles/start.ts";
import { startWebRole, type RunningWebRole } from "../../roles/web/index.ts";
import { captureLogs } from "./support.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

const folder = mkdtempSync(join(tmpdir(), "facefleet-tls-"));
const cert = join(folder, "cert.pem");
const key = join(folder, "key.pem");

function context(overrides: Partial<Config>): RoleContext {
  const config = loadConfig({}, { host: "127.0.0.1", port: 0, dataDir: join(folder, "data"), apiToken: "t", ...overrides });
  return { config, names: resourceNames(config), cloud: localCloud(config, async () => ({ stop: async () => {} })), log: captureLogs().logger , metrics: new ServiceMetrics() };
}
const start = (overrides: Partial<Config>) => startWebRole(context(overrides), { inspect: imageInspector(40_000_000), tokenSource: "data-dir" });

describe("TLS", () => {
  beforeAll(async () => {
    const openssl = Bun.spawn(
      [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        key,
        "-out",
        cert,
      ],
      { stdout: "ignore", stderr: "pipe" },
    );
    if ((await openssl.exited) !== 0) throw new Error(`openssl failed: ${await new Response(openssl.stderr).text()}`);
  });

  let web: RunningWebRole | undefined;
  afterAll(() => web?.stop());

  test("with a certificate and its key, the web role serves HTTPS and nothing else", async () => {
    web = await start({ tlsCertFile: cert, tlsKeyFile: key });
    const response = await fetch(`https://127.0.0.1:${web.port}/healthz`, { tls: { ca: readFileSync(cert, "utf8") } });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: "ok" });
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    await expect(fetch(`http://127.0.0.1:${web.port}/healthz`)).rejects.toThrow();
  });

  test("one of the two alone is refused at boot, naming both settings", async () => {
    for (const half of [{ tlsCertFile: cert }, { tlsKeyFile: key }]) {
      const started = start(half);
      await expect(started).rejects.toBeInstanceOf(ConfigError);
      await expect(started).rejects.toThrow(/FACEFLEET_TLS_CERT_FILE.*FACEFLEET_TLS_KEY_FILE/);
    }
  });

  test("a file that is missing, not PEM, or a key that does not match: refused at boot with the file's setting", async () => {
    await expect(start({ tlsCertFile: join(folder, "absent.pem"), tlsKeyFile: key })).rejects.toThrow(/tlsCertFile \(FACEFLEET_TLS_CERT_FILE\) .*absent\.pem/);
    const notPem = join(folder, "not.pem");
    writeFileSync(notPem, "hello");
    await expect(start({ tlsCertFile: cert, tlsKeyFile: notPem })).rejects.toThrow(/tlsKeyFile \(FACEFLEET_TLS_KEY_FILE\) .*not a PEM file/);
    const otherKey = join(folder, "other-key.pem");
    const openssl = Bun.spawn(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", otherKey], {
      stdout: "ignore",
      stderr: "ignore",
    });
    expect(await openssl.exited).toBe(0);
    await expect(start({ tlsCertFile: cert, tlsKeyFile: otherKey })).rejects.toBeInstanceOf(ConfigError);
  });
});
