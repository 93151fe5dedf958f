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
});
