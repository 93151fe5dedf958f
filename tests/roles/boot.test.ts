import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseRoles, resolveRoles, RoleError } from "../../roles/boot.ts";
import { loadConfig } from "../../roles/config.ts";

describe("role resolution", () => {
  test("parses single and combined roles", () => {
    expect(parseRoles("web")).toEqual(["web"]);
    expect(parseRoles("web+controller")).toEqual(["web", "controller"]);
    expect(parseRoles(" App , app ")).toEqual(["app"]);
    expect(() => parseRoles("database")).toThrow(RoleError);
    expect(() => parseRoles("")).toThrow(RoleError);
  });

  test("--role wins over the configured role, which wins over instance metadata", async () => {
    expect(await resolveRoles(["--role", "app"], "web", {})).toEqual({ roles: ["app"], source: "argument" });
    expect(await resolveRoles(["--role=controller"], undefined, {})).toEqual({ roles: ["controller"], source: "argument" });
    expect(await resolveRoles([], "web", {})).toEqual({ roles: ["web"], source: "configuration" });
  });

  test("the configured role comes from FACEFLEET_ROLE or the configuration file, several roles joined by +", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "facefleet-role-")), "config.json");
    writeFileSync(file, JSON.stringify({ role: "app" }));
    expect(loadConfig({ FACEFLEET_CONFIG: file }).role).toBe("app");
    const combined = loadConfig({ FACEFLEET_CONFIG: file, FACEFLEET_ROLE: "web+controller" }).role;
    expect(await resolveRoles([], combined, {})).toEqual({ roles: ["web", "controller"], source: "configuration" });
  });

  test("with instance metadata required, a service that never answers is an error, not the embedded mode", async () => {
    await withMetadataEndpoint(closedEndpoint(), async () => {
      const started = performance.now();
      await expect(resolveRoles([], undefined, {}, { required: true, waitMs: 600 })).rejects.toThrow(RoleError);
      expect(performance.now() - started).toBeGreaterThanOrEqual(600);
    });
  });

  test("with instance metadata required, a service that answers late is waited for", async () => {
    const readyAt = Date.now() + 700;
    const imds = metadataService("i-0late", () => (Date.now() < readyAt ? new Response("", { status: 503 }) : undefined));
    try {
      await withMetadataEndpoint(`http://127.0.0.1:${imds.port}`, async () => {
        expect(await resolveRoles([], undefined, {}, { required: true, waitMs: 10_000 })).toEqual({ roles: ["app"], source: "instance-metadata-tag", instanceId: "i-0late" });
        expect(Date.now()).toBeGreaterThanOrEqual(readyAt);
      });
    } finally {
      imds.stop(true);
    }
  });

  test("AWS_EC2_METADATA_DISABLED, as the SDK reads it, is honoured: no metadata asked, every role embedded; required metadata is then an error", async () => {
    let asked = 0;
    const imds = metadataService("i-0tagged", () => void asked++);
    try {
      await withMetadataEndpoint(`http://127.0.0.1:${imds.port}`, async () => {
        for (const value of ["true", "TRUE", "1"]) {
          expect(await resolveRoles([], undefined, { AWS_EC2_METADATA_DISABLED: value })).toEqual({ roles: ["all"], source: "instance-metadata-disabled" });
          await expect(resolveRoles([], undefined, { AWS_EC2_METADATA_DISABLED: value }, { required: true })).rejects.toThrow(/AWS_EC2_METADATA_DISABLED/);
        }
        expect(asked).toBe(0);
        // "false" or empty, as for the SDK, leaves metadata on.
        for (const value of ["false", ""]) {
          expect(await resolveRoles([], undefined, { AWS_EC2_METADATA_DISABLED: value })).toEqual({ roles: ["app"], source: "instance-metadata-tag", instanceId: "i-0tagged" });
        }
        expect(asked).toBeGreaterThan(0);
      });
    } finally {
      imds.stop(true);
    }
  });

  test("with no metadata service answering, every role runs embedded, quickly", async () => {
    await withMetadataEndpoint(closedEndpoint(), async () => {
      const started = performance.now();
      expect(await resolveRoles([], undefined, {})).toEqual({ roles: ["all"], source: "no-instance-metadata" });
      expect(performance.now() - started).toBeLessThan(1500);
    });
  });
});

/** An instance metadata service (IMDSv2) of an instance tagged Role=app; `before` may answer a request first. */
function metadataService(instanceId: string, before: () => Response | undefined = () => undefined) {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const early = before();
      if (early) return early;
      const path = new URL(request.url).pathname.replace(/\/{2,}/g, "/");
      if (path === "/latest/api/token" && request.method === "PUT") return new Response("token", { headers: { "x-aws-ec2-metadata-token-ttl-seconds": "21600" } });
      if (path === "/latest/meta-data/instance-id") return new Response(instanceId);
      if (path === "/latest/meta-data/tags/instance/Role") return new Response("app");
      return new Response("", { status: 404 });
    },
  });
}

/** An address where nothing listens any more. */
function closedEndpoint(): string {
  const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("", { status: 200 }) });
  const endpoint = `http://127.0.0.1:${closed.port}`;
  closed.stop(true);
  return endpoint;
}

/** Runs `body` with the SDK's metadata endpoint setting pointing at `endpoint`. */
async function withMetadataEndpoint(endpoint: string, body: () => Promise<void>): Promise<void> {
  const previous = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = endpoint;
  try {
    await body();
  } finally {
    if (previous === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = previous;
  }
}
