import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseOptions, UsageError } from "../../infra/script.ts";
import { readState, stateFilePath, writeState } from "../../infra/state.ts";

describe("infra script options", () => {
  test("defaults: apply for real, warm pool, controller on the web instance, and no ingress CIDR (bootstrap requires one)", () => {
    const defaults = parseOptions([]);
    expect(defaults).toMatchObject({ dryRun: false, yes: false, pool: "warm", colocateController: true });
    expect(defaults.ingressCidr).toBeUndefined();
  });

  test("flags are converted and validated against the schema", () => {
    expect(parseOptions(["--dry-run", "--pool", "cold", "--pool-size", "3", "--colocate-controller", "false", "--ingress-cidr", "198.51.100.7/32"])).toMatchObject({
      dryRun: true,
      pool: "cold",
      poolSize: 3,
      colocateController: false,
      ingressCidr: "198.51.100.7/32",
    });
  });

  test("bad values name their flag; unknown flags are refused", () => {
    expect(() => parseOptions(["--pool-size", "16"])).toThrow("--pool-size");
    expect(() => parseOptions(["--ingress-cidr", "everyone"])).toThrow("--ingress-cidr");
    expect(() => parseOptions(["--image", "ubuntu"])).toThrow("--image");
    expect(() => parseOptions(["--force"])).toThrow(UsageError);
  });
});

describe("state file", () => {
  const dir = mkdtempSync(join(tmpdir(), "facefleet-state-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("lives in .facefleet/<prefix>.json unless told otherwise", () => {
    expect(stateFilePath("alpha")).toBe(join(".facefleet", "alpha.json"));
    expect(stateFilePath("alpha", "/x/y.json")).toBe("/x/y.json");
  });

  test("each script's update merges into what the others wrote", () => {
    const path = join(dir, "nested", "alpha.json");
    expect(readState(path)).toBeUndefined();
    writeState(path, { prefix: "alpha", region: "us-east-1", buckets: { in: "alpha-in-bucket" }, launchTemplateId: "lt-1" });
    writeState(path, { prefix: "alpha", region: "us-east-1", imageId: "ami-1" });
    expect(readState(path)).toEqual({ prefix: "alpha", region: "us-east-1", buckets: { in: "alpha-in-bucket" }, queueUrls: {}, launchTemplateId: "lt-1", imageId: "ami-1" });
  });

  test("a file that is not a state file is refused", () => {
    const path = join(dir, "other.json");
    writeFileSync(path, JSON.stringify({ hello: "world" }));
    expect(() => readState(path)).toThrow("not a facefleet state file");
  });
});
