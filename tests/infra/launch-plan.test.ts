import { describe, expect, test } from "bun:test";
import { describeLaunchAction, planLaunch, type ExistingInstance } from "../../infra/launch-plan.ts";

const warm = { colocateController: true, pool: "warm" as const, poolSize: 15 };
const instance = (id: string, role: string, state: string): ExistingInstance => ({ id, role, state });

describe("launch plan", () => {
  test("an empty deployment gets the web tier with its controller and 15 stopped app instances", () => {
    expect(planLaunch([], warm)).toEqual([
      { kind: "launch", role: "web+controller", count: 1, thenStop: false },
      { kind: "launch", role: "app", count: 15, thenStop: true },
    ]);
  });

  test("a cold pool launches no app instance; a separate controller gets its own instance", () => {
    expect(planLaunch([], { colocateController: false, pool: "cold", poolSize: 15 }).map(describeLaunchAction)).toEqual([
      "launch 1 web instance",
      "launch 1 controller instance",
    ]);
  });

  test("a second run changes nothing, whatever state the controller left the app instances in", () => {
    const existing = [
      instance("i-web", "web+controller", "running"),
      ...Array.from({ length: 15 }, (_, n) => instance(`i-app${n}`, "app", n < 5 ? "running" : n < 7 ? "pending" : "stopped")),
    ];
    expect(planLaunch(existing, warm)).toEqual([]);
  });

  test("only the missing pool instances are launched; terminated ones do not count", () => {
    const existing = [
      instance("i-web", "web+controller", "running"),
      ...Array.from({ length: 10 }, (_, n) => instance(`i-app${n}`, "app", "stopped")),
      instance("i-gone", "app", "terminated"),
      instance("i-going", "app", "shutting-down"),
    ];
    expect(planLaunch(existing, warm)).toEqual([{ kind: "launch", role: "app", count: 5, thenStop: true }]);
  });

  test("a stopped web tier is started, not replaced", () => {
    expect(planLaunch([instance("i-web", "web+controller", "stopped")], { ...warm, pool: "cold" })).toEqual([
      { kind: "start", role: "web+controller", ids: ["i-web"] },
    ]);
  });

  test("a terminated web tier is replaced", () => {
    expect(planLaunch([instance("i-web", "web+controller", "terminated")], { ...warm, pool: "cold" })).toEqual([
      { kind: "launch", role: "web+controller", count: 1, thenStop: false },
    ]);
  });
});
