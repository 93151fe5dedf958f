import { describe, expect, test } from "bun:test";
import type { AppInstance, InstanceState } from "../../roles/cloud/types.ts";
import { goneReports } from "../../roles/controller/gone-reports.ts";

const listed = (states: Record<string, InstanceState>): AppInstance[] => Object.entries(states).map(([id, state]) => ({ id, state }));

describe("which job reports to delete", () => {
  test.each<[string, Record<string, InstanceState>, string[] | undefined, string[], string[]]>([
    ["first look: every stopped or terminated instance may have left one", { "i-a": "running", "i-b": "stopped", "i-c": "terminated" }, undefined, ["i-b", "i-c"], ["i-a"]],
    ["a running instance that stops (killed, or replaced): its report", { "i-a": "stopped" }, ["i-a"], ["i-a"], []],
    ["stopping or shutting down: not yet (it may still write its last report)", { "i-a": "stopping", "i-b": "shutting-down" }, ["i-a", "i-b"], [], ["i-a", "i-b"]],
    ["gone from the listing (terminated long ago): its report", { "i-b": "running" }, ["i-a", "i-b"], ["i-a"], ["i-b"]],
    ["stopped before, still stopped: deleted once, not on every look", { "i-a": "stopped" }, [], [], []],
    ["a stopped instance started again may have a report again", { "i-a": "pending" }, [], [], ["i-a"]],
    ["nothing listed, nothing known: nothing", {}, [], [], []],
  ])("%s", (_, states, known, remove, mayHaveReport) => {
    const decision = goneReports(listed(states), known && new Set(known));
    expect(decision.remove.sort()).toEqual(remove);
    expect([...decision.mayHaveReport].sort()).toEqual(mayHaveReport);
  });
});
