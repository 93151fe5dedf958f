import { describe, expect, test } from "bun:test";
import type { AppInstance, JobReport } from "../../roles/cloud/types.ts";
import { decideReplacements, nextProgressWatch, nextRunningSince, SILENT_AFTER_MS, type ProgressWatch } from "../../roles/controller/fleet-health.ts";
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
    expect(decideReplacements({ now: 1_000, active, reports, watch: watch(1_000), runningSince: { "i-a": 0, "i-b": 0 } }, NO_PROGRESS_MS)).toMatchObject({ replace, stalled: false });
  });

  test("no job answered for noProgressAfterMs while jobs wait: the whole fleet, and it says why", () => {
    const inputs = { active: running("i-a", "i-b"), reports: [report("i-a"), report("i-b")], watch: watch(0), runningSince: {} };
    expect(decideReplacements({ ...inputs, now: NO_PROGRESS_MS - 1 }, NO_PROGRESS_MS)).toMatchObject({ replace: [], stalled: false, stalledForMs: NO_PROGRESS_MS - 1 });
    const stalled = decideReplacements({ ...inputs, now: NO_PROGRESS_MS }, NO_PROGRESS_MS);
    expect(stalled).toMatchObject({ replace: ["i-a", "i-b"], stalled: true, stalledForMs: NO_PROGRESS_MS });
    expect(stalled.reason).toContain("no job answered for 60000 ms");
    expect(decideReplacements({ ...inputs, active: [], now: NO_PROGRESS_MS }, NO_PROGRESS_MS).replace).toEqual([]);
  });
});

describe("a running instance that writes no report (its service is not up: a unit failing at every start, a hung boot)", () => {
  const at = (now: number, reports: JobReport[], active = running("i-a"), runningSince: Record<string, number> = { "i-a": 0 }) =>
    decideReplacements({ now, active, reports, watch: watch(now), runningSince }, NO_PROGRESS_MS);
  test.each<[string, number, JobReport[], string[]]>([
    ["no report since it runs, for silentAfterMs: replaced", SILENT_AFTER_MS, [], ["i-a"]],
    ["a moment less: booting, not replaced", SILENT_AFTER_MS - 1, [], []],
    ["its last report expired but is recent (its service restarted, booting again): not replaced", SILENT_AFTER_MS, [report("i-a", { at: 1_000 })], []],
    ["its last report is silentAfterMs old: replaced", SILENT_AFTER_MS, [report("i-a", { at: 0 })], ["i-a"]],
  ])("%s", (_, now, reports, replace) => {
    expect(at(now, reports)).toMatchObject({ replace, stalled: false });
  });

  test("only instances listed running that long, each once, and the reason says so", () => {
    expect(at(SILENT_AFTER_MS, [], [{ id: "i-a", state: "pending" }], {}).replace).toEqual([]);
    const both = at(SILENT_AFTER_MS, [report("i-b", { at: SILENT_AFTER_MS, healthy: false })], running("i-a", "i-b"), { "i-a": 0, "i-b": 0 });
    expect(both.replace).toEqual(["i-b", "i-a"]);
    expect(both.reason).toBe(`1 instance(s) report they cannot run jobs; 1 running instance(s) wrote no report for ${SILENT_AFTER_MS} ms: replace them`);
  });

  test("running since: the first listing that shows it running, kept while it runs, forgotten when it stops", () => {
    const first = nextRunningSince({}, [{ id: "i-a", state: "running" }, { id: "i-b", state: "pending" }], 1_000);
    expect(first).toEqual({ "i-a": 1_000 });
    const later = nextRunningSince(first, running("i-a", "i-b"), 2_000);
    expect(later).toEqual({ "i-a": 1_000, "i-b": 2_000 });
    expect(nextRunningSince(later, running("i-b"), 3_000)).toEqual({ "i-b": 2_000 });
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
