/** The local process that stands for a running instance: its output goes to a log file, stop is SIGTERM then SIGKILL. */
import { closeSync, openSync } from "node:fs";

export interface ProcessSpec {
  command: string[];
  cwd?: string;
  env?: Record<string, string>;
}

export interface InstanceProcess {
  pid: number;
  /** Resolves with the exit code (or signal number + 128) whenever the process ends. */
  exited: Promise<number>;
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL if it is still alive after `graceMs`. */
  stop(graceMs: number): Promise<void>;
}

export function spawnInstanceProcess(spec: ProcessSpec, logPath: string): InstanceProcess {
  const log = openSync(logPath, "a");
  const child = Bun.spawn(spec.command, { cwd: spec.cwd, env: spec.env, stdin: "ignore", stdout: log, stderr: log });
  closeSync(log);
  let ended = false;
  const exited = child.exited.then((code) => {
    ended = true;
    return code;
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
