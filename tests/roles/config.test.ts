// The configuration schema at its edges: lists from the environment, settings given together, bounds between settings.
import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../roles/config.ts";

describe("loadConfig", () => {
  test("a list setting is comma-separated in the environment; a nested setting given alone names the one missing", () => {
    const env = { FACEFLEET_APP_NETWORK_SUBNET_IDS: "subnet-1a, subnet-2b,", FACEFLEET_APP_NETWORK_SECURITY_GROUP_ID: "sg-9" };
    expect(loadConfig(env).appNetwork).toEqual({ subnetIds: ["subnet-1a", "subnet-2b"], securityGroupId: "sg-9" });
    expect(loadConfig({}).appNetwork).toBeUndefined();
    expect(() => loadConfig({ FACEFLEET_APP_NETWORK_SUBNET_IDS: "subnet-1a" })).toThrow("appNetwork.securityGroupId (FACEFLEET_APP_NETWORK_SECURITY_GROUP_ID)");
    expect(() => loadConfig({ ...env, FACEFLEET_APP_NETWORK_SUBNET_IDS: "vpc-1" })).toThrow("appNetwork.subnetIds.0");
  });

  test("the web role listens on loopback unless told", () => {
    expect(loadConfig({}).host).toBe("127.0.0.1");
    expect(loadConfig({ FACEFLEET_HOST: "0.0.0.0" }).host).toBe("0.0.0.0");
  });

  test("a file limit past the body bound is refused, naming both settings", () => {
    expect(loadConfig({ FACEFLEET_MAX_UPLOAD_BYTES: "1000", FACEFLEET_MAX_BODY_BYTES: "1000" }).maxUploadBytes).toBe(1000);
    const refusal = () => loadConfig({ FACEFLEET_MAX_UPLOAD_BYTES: "1001", FACEFLEET_MAX_BODY_BYTES: "1000" });
    expect(refusal).toThrow(ConfigError);
    expect(refusal).toThrow("FACEFLEET_MAX_UPLOAD_BYTES");
    expect(refusal).toThrow("FACEFLEET_MAX_BODY_BYTES");
  });

  describe("with uploadRetentionDays set, an input bucket that is also another bucket of the deployment is refused: the uploads' rules would delete its objects", () => {
    test.each([
      ["its own bucket", {}, []],
      ["the output bucket", { outBucket: "alpha-in-bucket" }, ["outBucket", "galleryBucket"]], // the gallery follows the output bucket
      ["the output bucket, the gallery elsewhere", { outBucket: "alpha-in-bucket", galleryBucket: "alpha-gallery" }, ["outBucket"]],
      ["the gallery bucket", { galleryBucket: "alpha-in-bucket" }, ["galleryBucket"]],
      ["the reports bucket", { reportsBucket: "alpha-in-bucket" }, ["reportsBucket"]],
      ["the reports bucket, named by the input bucket's setting", { inBucket: "alpha-reports-bucket" }, ["reportsBucket"]],
    ] as const)("%s", (_, buckets, refused) => {
      const load = (uploadRetentionDays: number) => () => loadConfig({}, { prefix: "alpha", uploadRetentionDays, ...buckets });
      expect(load(0)).not.toThrow();
      if (refused.length === 0) return void expect(load(30)().uploadRetentionDays).toBe(30);
      let message = "";
      try {
        load(30)();
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        message = (error as Error).message;
      }
      const named = [...message.matchAll(/uploadRetentionDays \(FACEFLEET_UPLOAD_RETENTION_DAYS\): the input bucket \S+ is also the (\w+),/g)].map((match) => match[1]);
      expect(named).toEqual([...refused]);
      expect(message).toContain("give it a bucket of its own");
    });
  });
});
