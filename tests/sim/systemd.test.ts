// What the emulated instances' systemd does when a service's process exits: a pure decision, as a table.
import { describe, expect, test } from "bun:test";
import { afterExit, serviceRestartOf, timeSpanMs, type ProcessExit, type ServiceRestart } from "../../infra/sim/ec2/systemd.ts";
import { systemdUnit } from "../../infra/user-data.ts";

const exited = (code: number): ProcessExit => ({ code, signal: null });
const killed = (signal: string): ProcessExit => ({ code: null, signal });

describe("the unit file the bake writes", () => {
  test("is read for its restart settings: on failure, after 5 s, with no start limit", () => {
    expect(serviceRestartOf(systemdUnit())).toEqual({ restart: "on-failure", restartDelayMs: 5000, startLimitIntervalMs: 0, startLimitBurst: 5 });
  });

  test("a unit without them gets systemd's defaults; StartLimit* are [Unit] settings, Restart* [Service] ones", () => {
    expect(serviceRestartOf("[Service]\nExecStart=/bin/true\n")).toEqual({ restart: "no", restartDelayMs: 100, startLimitIntervalMs: 10_000, startLimitBurst: 5 });
    const misplaced = "[Unit]\nRestart=always\nRestartSec=1\n[Service]\nStartLimitBurst=1\n";
    expect(serviceRestartOf(misplaced)).toEqual({ restart: "no", restartDelayMs: 100, startLimitIntervalMs: 10_000, startLimitBurst: 5 });
    expect(serviceRestartOf("[Unit]\nStartLimitIntervalSec=1min 30s\nStartLimitBurst=3\n[Service]\nRestart=always\nRestartSec=250ms\n")).toEqual({
      restart: "always",
      restartDelayMs: 250,
      startLimitIntervalMs: 90_000,
      startLimitBurst: 3,
    });
  });

  test("a setting the emulator does not know is an error, not a guess", () => {
    expect(() => serviceRestartOf("[Service]\nRestart=sometimes\n")).toThrow(/Restart=sometimes/);
    expect(() => timeSpanMs("5 fortnights")).toThrow(/fortnights/);
    expect(() => timeSpanMs("soon")).toThrow(/time span/);
    expect(timeSpanMs("infinity")).toBe(Infinity);
    expect(timeSpanMs("2")).toBe(2000);
  });
});

describe("after the main process exits", () => {
  const onFailure: ServiceRestart = { restart: "on-failure", restartDelayMs: 5000, startLimitIntervalMs: 0, startLimitBurst: 5 };
  const cases: [string, ServiceRestart, ProcessExit, ReturnType<typeof afterExit>][] = [
    ["on-failure, exit 1: restarted after RestartSec", onFailure, exited(1), { restartInMs: 5000 }],
    ["on-failure, SIGKILL (the OOM killer, a chaos kill): restarted", onFailure, killed("SIGKILL"), { restartInMs: 5000 }],
    ["on-failure, exit 0: not restarted", onFailure, exited(0), { stays: "down" }],
    ["on-failure, SIGTERM (a clean signal): not restarted", onFailure, killed("SIGTERM"), { stays: "down" }],
    ["always, exit 0: restarted", { ...onFailure, restart: "always" }, exited(0), { restartInMs: 5000 }],
    ["no, SIGKILL: not restarted", { ...onFailure, restart: "no" }, killed("SIGKILL"), { stays: "down" }],
    ["on-success, exit 2: not restarted", { ...onFailure, restart: "on-success" }, exited(2), { stays: "down" }],
    ["on-abnormal, exit 2: not restarted", { ...onFailure, restart: "on-abnormal" }, exited(2), { stays: "down" }],
    ["on-abnormal, SIGSEGV: restarted", { ...onFailure, restart: "on-abnormal" }, killed("SIGSEGV"), { restartInMs: 5000 }],
  ];
  test.each(cases)("%s", (_, service, exit, expected) => {
    expect(afterExit(service, exit, [0, 1000, 2000, 3000, 4000, 5000, 6000], 10_000)).toEqual(expected);
  });

  test("the start limit counts the starts within the interval before the restart would happen", () => {
    const limited: ServiceRestart = { restart: "on-failure", restartDelayMs: 1000, startLimitIntervalMs: 10_000, startLimitBurst: 3 };
    // Started at 0, 1 s and 2 s: a restart at 3 s would be the fourth start within 10 s.
    expect(afterExit(limited, exited(1), [0, 1000, 2000], 2000)).toEqual({ stays: "failed-start-limit" });
    // The first start has left the interval by the time of the restart (10.5 s).
    expect(afterExit(limited, exited(1), [0, 1000, 2000], 9500)).toEqual({ restartInMs: 1000 });
    expect(afterExit(limited, exited(1), [0, 1000], 1500)).toEqual({ restartInMs: 1000 });
    // StartLimitIntervalSec=0: never limited.
    expect(afterExit({ ...limited, startLimitIntervalMs: 0 }, exited(1), [0, 1, 2, 3, 4, 5], 6)).toEqual({ restartInMs: 1000 });
  });
});
