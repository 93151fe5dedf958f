import { describe, expect, test } from "bun:test";
import type { AppInstance, JobReport } from "../../roles/cloud/types.ts";
import { decideReplacements, nextProgressWatch, type ProgressWatch } from "../../roles/controller/fleet-health.ts";
import { JOB_REPORT_EXPIRY_MS } from "../../roles/deployment.ts";

const running = (...ids: string[]): AppInstance[] => ids.map((id) => ({ id, state: "running" }));
const report = (instanceId: string, fields: Partial<JobReport> = {}): JobReport => ({ instanceId, jobs: 0, at: 1_000, completed: 0, healthy: true, ...fields });
const watch = (since: number, completed: Record<string, number> = {}): ProgressWatch => ({ since, completed });
const NO_PROGRESS_MS = 60_000;

describe("which instances to replace", () => {
  test.each<[string, AppInstance[], JobReport[], string[]]>([
    ["all healthy: none", running("i-a", "i-b"), [report("i-a"), report("i-b")], []],
    ["one reports it cannot run jobs: that one", running("i-a", "i-b"), [report("i-a", { healthy: false }), report("i-b")], ["i-a"]],
    ["a report without the field (an older instance) counts as healthy", running("i-a"), [{ instanceId: "i-a", jobs: 1, at: 1_000 }], []],
    ["no report yet (booting): not replaced", running("i-a"), [], []],
    ["an unhealthy report of an instance no longer active: ignored", running("i-b"), [report("i-a", { healthy: false })], []],
    ["an expired unhealthy report (silent instance): not trusted", running("i-a"), [report("i-a", { healthy: false, at: 1_000 - JOB_REPORT_EXPIRY_MS })], []],
  ])("%s", (_, active, reports, replace) => {
    expect(decideReplacements({ now: 1_000, active, reports, watch: watch(1_000) }, NO_PROGRESS_MS)).toMatchObject({ replace, stalled: false });
  });

  test("no job answered for noProgressAfterMs while jobs wait: the whole fleet, and it says why", () => {
    const inputs = { active: running("i-a", "i-b"), reports: [report("i-a"), report("i-b")], watch: watch(0) };
    expect(decideReplacements({ ...inputs, now: NO_PROGRESS_MS - 1 }, NO_PROGRESS_MS)).toMatchObject({ replace: [], stalled: false, stalledForMs: NO_PROGRESS_MS - 1 });
    const stalled = decideReplacements({ ...inputs, now: NO_PROGRESS_MS }, NO_PROGRESS_MS);
    expect(stalled).toMatchObject({ replace: ["i-a", "i-b"], stalled: true, stalledForMs: NO_PROGRESS_MS });
    expect(stalled.reason).toContain("no job answered for 60000 ms");
    expect(decideReplacements({ ...inputs, active: [], now: NO_PROGRESS_MS }, NO_PROGRESS_MS).replace).toEqual([]);
  });
});

describe("the progress watch", () => {
  test.each<[string, ProgressWatch | undefined, JobReport[], number, number]>([
    ["first reading: starts now", undefined, [report("i-a", { completed: 5 })], 3, 5_000],
    ["an instance answered a job: progress", watch(0, { "i-a": 5 }), [report("i-a", { completed: 6 })], 3, 5_000],
    ["nothing answered while jobs wait: the spell goes on", watch(0, { "i-a": 5 }), [report("i-a", { completed: 5 })], 3, 0],
    ["nothing waits: no stall", watch(0, { "i-a": 5 }), [report("i-a", { completed: 5 })], 0, 5_000],
    ["a new instance that has answered jobs: progress", watch(0, { "i-a": 5 }), [report("i-a", { completed: 5 }), report("i-b", { completed: 1 })], 3, 5_000],
    ["a restarted instance counts from 0 again: no progress until it answers", watch(0, { "i-a": 50 }), [report("i-a", { completed: 0 })], 3, 0],
  ])("%s", (_, before, reports, backlog, since) => {
    expect(nextProgressWatch(before, reports, backlog, 5_000).since).toBe(since);
  });

  test("a restarted instance's first answers count, against its new count", () => {
    const afterRestart = nextProgressWatch(watch(0, { "i-a": 50 }), [report("i-a", { completed: 0 })], 3, 5_000);
    expect(nextProgressWatch(afterRestart, [report("i-a", { completed: 1 })], 3, 6_000).since).toBe(6_000);
  });
});
