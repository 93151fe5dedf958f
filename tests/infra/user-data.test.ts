import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../roles/config.ts";
import { builderUserData, CONFIG_FILE, ENVIRONMENT_FILE, environmentFile, systemdUnit } from "../../infra/user-data.ts";

const config = loadConfig({}, { prefix: "alpha", role: "web", maxReceives: 5 });
const input = { bucket: "alpha-in-bucket", tarballKey: "_bake/abc-1/facefleet.tar.gz", markerPrefix: "_bake/abc-1/", region: "eu-west-1", config: { ...config } };
const script = builderUserData(input);
const lines = script.split("\n");

/** The text a quoted here-document writes, as bash would write it. */
function hereDocument(delimiter: string): string {
  const start = lines.findIndex((line) => line.endsWith(`<<'${delimiter}'`));
  const end = lines.indexOf(delimiter, start + 1);
  expect(start).toBeGreaterThan(-1);
  expect(end).toBeGreaterThan(start);
  return lines.slice(start + 1, end).join("\n") + "\n";
}

const indexOf = (text: string) => {
  const index = lines.findIndex((line) => line.startsWith(text));
  expect(index).toBeGreaterThan(-1);
  return index;
};

describe("AMI builder user data", () => {
  test("is a bash script that bash accepts", () => {
    expect(lines[0]).toBe("#!/bin/bash");
    const check = Bun.spawnSync(["bash", "-n"], { stdin: new TextEncoder().encode(script), stderr: "pipe" });
    expect(check.stderr.toString()).toBe("");
    expect(check.exitCode).toBe(0);
  });

  test("stops at the first failure and reports it with its log before powering off", () => {
    expect(indexOf("set -euo pipefail")).toBeLessThan(indexOf("trap report_failure ERR"));
    expect(script).toContain("aws s3 cp /var/log/facefleet-bake.log s3://alpha-in-bucket/_bake/abc-1/failed");
    expect(indexOf("trap report_failure ERR")).toBeLessThan(indexOf("dnf install"));
  });

  test("installs Bun from npm, then the project from its tarball, its models, and production dependencies only", () => {
    const order = [
      "dnf install -y nodejs22 nodejs22-npm",
      "npm-22 install -g bun",
      "aws s3 cp s3://alpha-in-bucket/_bake/abc-1/facefleet.tar.gz /tmp/facefleet.tar.gz",
      "tar -xzf /tmp/facefleet.tar.gz -C /opt/facefleet",
      "bun install --frozen-lockfile",
      "bun run model:build",
      "rm -rf node_modules",
      "bun install --production --frozen-lockfile",
      "systemctl enable facefleet.service",
      "echo ok | aws s3 cp - s3://alpha-in-bucket/_bake/abc-1/done",
      "shutdown -h now",
    ].map(indexOf);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(lines.at(-2)).toBe("shutdown -h now");
  });

  test("the image boots into `bun index.ts` with the deployment's configuration, no fixed role, and instance metadata required", () => {
    expect(hereDocument("FACEFLEET_UNIT")).toBe(systemdUnit());
    expect(systemdUnit()).toContain("ExecStart=/usr/bin/env bun index.ts");
    expect(systemdUnit()).toContain(`EnvironmentFile=${ENVIRONMENT_FILE}`);
    expect(systemdUnit()).toContain("WantedBy=multi-user.target");
    expect(hereDocument("FACEFLEET_ENV")).toBe(`FACEFLEET_CONFIG="${CONFIG_FILE}"\nAWS_REGION="eu-west-1"\n`);
    const baked = JSON.parse(hereDocument("FACEFLEET_CONFIG_JSON"));
    expect(baked.prefix).toBe("alpha");
    expect(baked.maxReceives).toBe(5);
    expect(baked.role).toBeUndefined();
    // Only ever booted on EC2: no instance of the image may fall back to the embedded mode.
    expect(baked.instanceMetadata).toBe("required");
    expect(loadConfig({}, baked)).toEqual(loadConfig({}, { prefix: "alpha", maxReceives: 5, instanceMetadata: "required" }));
  });

  test("refuses names that would break out of the script or the unit file", () => {
    expect(() => builderUserData({ ...input, tarballKey: "x; rm -rf /" })).toThrow("unsafe S3 name");
    expect(() => builderUserData({ ...input, bucket: "a$(id)" })).toThrow("unsafe S3 name");
    expect(() => builderUserData({ ...input, region: "eu-west-1\nreboot" })).toThrow("bad region");
    expect(() => environmentFile({ FACEFLEET_X: 'a"\nb' })).toThrow("FACEFLEET_X");
    expect(() => environmentFile({ "bad-name": "x" })).toThrow("bad environment variable name");
  });

  test("fits EC2's 16 KB user data limit", () => {
    expect(Buffer.from(script).toString("base64").length).toBeLessThan(16 * 1024);
  });
});
