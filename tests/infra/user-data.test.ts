import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../roles/config.ts";
import packageJson from "../../package.json";
import {
  BUN_VERSION,
  bunVersionOf,
  builderUserData,
  CACHE_DIR,
  CLOUD_INIT_CONFIG,
  CLOUD_INIT_DROP_IN,
  CONFIG_FILE,
  ENVIRONMENT_FILE,
  environmentFile,
  PROJECT_DIR,
  PROJECT_INSTALL_STEPS,
  SERVICE_USER,
  systemdUnit,
} from "../../infra/user-data.ts";

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

/** The unit's directives by section: `{ Service: { User: ["facefleet"] } }`, comments left out. */
function unitDirectives(unit: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {};
  let section: Record<string, string[]> = {};
  for (const line of unit.split("\n")) {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) sections[header[1]!] = section = {};
    const directive = /^(\w+)=(.*)$/.exec(line);
    if (directive) (section[directive[1]!] ??= []).push(directive[2]!);
  }
  return sections;
}
const unit = unitDirectives(systemdUnit());

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

  test("installs the pinned Bun from npm, the service user, then the project from its tarball, its models, and production dependencies only", () => {
    const order = [
      "dnf install -y nodejs22 nodejs22-npm",
      `npm-22 install -g bun@${BUN_VERSION}`,
      `useradd --system --user-group --no-create-home --home-dir ${CACHE_DIR} --shell /sbin/nologin ${SERVICE_USER}`,
      "aws s3 cp s3://alpha-in-bucket/_bake/abc-1/facefleet.tar.gz /tmp/facefleet.tar.gz",
      "tar -xzf /tmp/facefleet.tar.gz -C /opt/facefleet --no-same-owner",
      `cd ${PROJECT_DIR}`,
      // The install steps the emulated region's builder and tests/deploy run too, in their order.
      ...PROJECT_INSTALL_STEPS,
      "rm -rf /root/.bun/install/cache /root/.npm",
      "systemctl enable facefleet.service",
      "echo ok | aws s3 cp - s3://alpha-in-bucket/_bake/abc-1/done",
      "shutdown -h now",
    ].map(indexOf);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(lines.at(-2)).toBe("shutdown -h now");
    expect(PROJECT_INSTALL_STEPS).toEqual(["bun install --frozen-lockfile", "bun run model:build", "rm -rf node_modules", "bun install --production --frozen-lockfile"]);
  });

  test("the Bun version has one home, package.json's packageManager, and the tests run on it", () => {
    expect(packageJson.packageManager).toBe(`bun@${BUN_VERSION}`);
    expect(script).not.toMatch(/install -g bun(\s|$)/m);
    expect(Bun.version).toBe(BUN_VERSION);
    expect(() => bunVersionOf("bun@^1.4")).toThrow("bun@<major.minor.patch>");
    expect(() => bunVersionOf("npm@10.0.0")).toThrow("packageManager");
  });

  test("the service runs as its own unprivileged user, which reads the project and its configuration and writes only its cache", () => {
    expect(unit.Service!.User).toEqual([SERVICE_USER]);
    expect(unit.Service!.Group).toEqual([SERVICE_USER]);
    expect(unit.Service!.NoNewPrivileges).toEqual(["yes"]);
    expect(unit.Service!.ProtectSystem).toEqual(["strict"]);
    expect(unit.Service!.ProtectHome).toEqual(["yes"]);
    expect(unit.Service!.PrivateTmp).toEqual(["yes"]);
    // The one writable directory: Bun's transpiler cache and onnxruntime's files go there through XDG_CACHE_HOME.
    const writable = ["ReadWritePaths", "StateDirectory", "LogsDirectory", "RuntimeDirectory", "ConfigurationDirectory", "CacheDirectory"].filter((name) => unit.Service![name]);
    expect(writable).toEqual(["CacheDirectory"]);
    expect(`/var/cache/${unit.Service!.CacheDirectory}`).toBe(CACHE_DIR);
    // Production mode: an uncaught error answers Bun's bare 500, never its developer page (source, paths, stack).
    expect(unit.Service!.Environment).toEqual([`HOME=${CACHE_DIR} XDG_CACHE_HOME=${CACHE_DIR}`, "NODE_ENV=production"]);
    expect(unit.Service!.WorkingDirectory).toEqual([PROJECT_DIR]);
    // The project stays root's: nothing hands it to the service user.
    expect(script).not.toMatch(new RegExp(`chown[^\n]*${SERVICE_USER}[^\n]*${PROJECT_DIR}`));
    expect(script).toContain(`chown root:${SERVICE_USER} ${CONFIG_FILE}\nchmod 640 ${CONFIG_FILE}`);
    expect(script).toContain(`chmod 600 ${ENVIRONMENT_FILE}`);
  });

  test("the service's memory has a ceiling sized from the instance's memory", () => {
    expect(unit.Service!.MemoryMax).toEqual(["85%"]);
  });

  test("systemd never gives up restarting the service, and uses no setting that AL2023's systemd 252 lacks", () => {
    expect(unit.Unit!.StartLimitIntervalSec).toEqual(["0"]);
    expect(unit.Service!.Restart).toEqual(["on-failure"]);
    expect(Number(unit.Service!.RestartSec![0])).toBeGreaterThanOrEqual(5);
    expect(unit.Service!.RestartSteps).toBeUndefined();
    expect(unit.Service!.RestartMaxDelaySec).toBeUndefined();
  });

  const systemdAnalyze = Bun.which("systemd-analyze");
  const systemdVersion = systemdAnalyze ? /systemd (\d+)/.exec(Bun.spawnSync(["systemctl", "--version"]).stdout.toString())?.[1] : undefined;
  test.skipIf(systemdVersion !== "252")("systemd 252, AL2023's, knows every directive of the unit (systemd-analyze verify)", () => {
    const dir = mkdtempSync(join(tmpdir(), "facefleet-unit-"));
    try {
      writeFileSync(join(dir, "facefleet.service"), systemdUnit());
      const verify = Bun.spawnSync([systemdAnalyze!, "verify", join(dir, "facefleet.service")], { stdout: "pipe", stderr: "pipe" });
      // Unknown or malformed settings are warnings, not a failed verify: the output must be empty.
      expect(verify.stdout.toString() + verify.stderr.toString()).toBe("");
      expect(verify.exitCode).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
    expect(loadConfig({}).host).toBe("127.0.0.1");
    expect(baked.host).toBe("0.0.0.0");
    expect(loadConfig({}, baked)).toEqual(loadConfig({}, { prefix: "alpha", maxReceives: 5, instanceMetadata: "required", host: "0.0.0.0" }));
  });

  test("the image runs no user data: cloud-init's drop-in is written after the install, once this boot's user data has run", () => {
    expect(hereDocument("FACEFLEET_CLOUD_CFG")).toBe(CLOUD_INIT_CONFIG);
    expect(lines).toContain(`cat > ${CLOUD_INIT_DROP_IN} <<'FACEFLEET_CLOUD_CFG'`);
    expect(CLOUD_INIT_DROP_IN).toMatch(/^\/etc\/cloud\/cloud\.cfg\.d\/99-[\w-]+\.cfg$/);
    expect(Bun.YAML.parse(CLOUD_INIT_CONFIG)).toMatchObject({ allow_userdata: false });
    const finalModules = (Bun.YAML.parse(CLOUD_INIT_CONFIG) as { cloud_final_modules: string[] }).cloud_final_modules;
    expect(finalModules.map((module) => module.replaceAll("_", "-"))).not.toContain("scripts-user");
    expect(lines.findIndex((line) => line.startsWith(`cat > ${CLOUD_INIT_DROP_IN}`))).toBeGreaterThan(lines.indexOf("systemctl enable facefleet.service"));
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
