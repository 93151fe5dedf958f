/** The local process that stands for a running instance: its output goes to a log file, stop is SIGTERM then SIGKILL. */
import { closeSync, openSync } from "node:fs";
import type { ProcessExit, ServiceRestart } from "./systemd.ts";

export interface ProcessSpec {
  command: string[];
  cwd?: string;
  env?: Record<string, string>;
  /**
   * The process is a systemd service with these restart settings: when it exits the instance keeps running and systemd
   * restarts it or not. Without: the process is a script that powers the instance off when it ends (the AMI builder).
   */
  service?: ServiceRestart;
}

export interface InstanceProcess {
  pid: number;
  /** Resolves with the exit code, or the signal that killed it, whenever the process ends. */
  exited: Promise<ProcessExit>;
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL if it is still alive after `graceMs`. */
  stop(graceMs: number): Promise<void>;
}

export function spawnInstanceProcess(spec: ProcessSpec, logPath: string): InstanceProcess {
  const log = openSync(logPath, "a");
  const child = Bun.spawn(spec.command, { cwd: spec.cwd, env: spec.env, stdin: "ignore", stdout: log, stderr: log });
  closeSync(log);
  let ended = false;
  const exited = child.exited.then((): ProcessExit => {
    ended = true;
    return { code: child.exitCode, signal: child.signalCode === null ? null : String(child.signalCode) };
  });
  return {
    pid: child.pid,
    exited,
    signal: (signal) => {
      if (!ended) child.kill(signal);
    },
    async stop(graceMs) {
      if (ended) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => ended || child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
