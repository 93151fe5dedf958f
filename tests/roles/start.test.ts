import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../roles/config.ts";
import { appInferenceWorkers } from "../../roles/start.ts";

describe("inference workers of an app-only process", () => {
  test("one per job slot, at most one per core, unless the configuration names a number", () => {
    expect(appInferenceWorkers(loadConfig({}), 2)).toBe(1);
    expect(appInferenceWorkers(loadConfig({ FACEFLEET_SLOTS_PER_INSTANCE: "4" }), 2)).toBe(2);
    expect(appInferenceWorkers(loadConfig({ FACEFLEET_SLOTS_PER_INSTANCE: "4" }), 8)).toBe(4);
    expect(appInferenceWorkers(loadConfig({ FACEFLEET_MODEL_WORKERS: "3" }), 2)).toBe(3);
  });
});
