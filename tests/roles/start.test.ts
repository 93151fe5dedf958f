import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../roles/config.ts";
import { appInferenceWorkers, startExpirySweep } from "../../roles/start.ts";
import { captureLogs } from "../support/logs.ts";

describe("inference workers of an app-only process", () => {
  test("one per job slot, at most one per core, unless the configuration names a number", () => {
    expect(appInferenceWorkers(loadConfig({}), 2)).toBe(1);
    expect(appInferenceWorkers(loadConfig({ FACEFLEET_SLOTS_PER_INSTANCE: "4" }), 2)).toBe(2);
    expect(appInferenceWorkers(loadConfig({ FACEFLEET_SLOTS_PER_INSTANCE: "4" }), 8)).toBe(4);
    expect(appInferenceWorkers(loadConfig({ FACEFLEET_MODEL_WORKERS: "3" }), 2)).toBe(3);
  });
});

describe("the embedded expiry sweep", () => {
  test("stop clears the timer and waits for a sweep under way; a sweep still running when the next is due is not doubled", async () => {
    let calls = 0;
    let finish = () => {};
    const sweep = () => {
      calls++;
      return new Promise<number>((resolve) => (finish = () => resolve(2)));
    };
    const logs = captureLogs();
    const sweeper = startExpirySweep(sweep, 1, logs.logger);
    for (const deadline = Date.now() + 5_000; calls === 0; ) {
      if (Date.now() > deadline) throw new Error("no sweep within 5 s");
      await Bun.sleep(2);
    }
    await Bun.sleep(20); // many periods: the running sweep is not doubled
    expect(calls).toBe(1);
    let stopped = false;
    const stopping = sweeper.stop().then(() => (stopped = true));
    await Bun.sleep(20);
    expect(stopped).toBe(false);
    finish();
    await stopping;
    expect(logs.lines).toContainEqual(expect.objectContaining({ event: "objects_expired", expired: 2 }));
    await Bun.sleep(20);
    expect(calls).toBe(1);
  });
});
