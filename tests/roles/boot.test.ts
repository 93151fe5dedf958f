import { describe, expect, test } from "bun:test";
import { parseRoles, resolveRoles, RoleError } from "../../roles/boot.ts";

describe("role resolution", () => {
  test("parses single and combined roles", () => {
    expect(parseRoles("web")).toEqual(["web"]);
    expect(parseRoles("web+controller")).toEqual(["web", "controller"]);
    expect(parseRoles(" App , app ")).toEqual(["app"]);
    expect(() => parseRoles("database")).toThrow(RoleError);
    expect(() => parseRoles("")).toThrow(RoleError);
  });

  test("--role wins over FACEFLEET_ROLE, which wins over instance metadata", async () => {
    expect(await resolveRoles(["--role", "app"], { FACEFLEET_ROLE: "web" })).toEqual({ roles: ["app"], source: "argument" });
    expect(await resolveRoles(["--role=controller"], {})).toEqual({ roles: ["controller"], source: "argument" });
    expect(await resolveRoles([], { FACEFLEET_ROLE: "web" })).toEqual({ roles: ["web"], source: "environment" });
  });

  test("with no metadata service answering, every role runs embedded, quickly", async () => {
    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("", { status: 200 }) });
    const endpoint = `http://127.0.0.1:${closed.port}`;
    closed.stop(true);
    const previous = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = endpoint;
    try {
      const started = performance.now();
      expect(await resolveRoles([], {})).toEqual({ roles: ["all"], source: "no-instance-metadata" });
      expect(performance.now() - started).toBeLessThan(1500);
    } finally {
      if (previous === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
      else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = previous;
    }
  });
});
