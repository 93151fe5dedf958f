/**
 * What systemd (252, AL2023's) does when a service's main process exits, read from the service's unit file: restart it
 * after `RestartSec=` when `Restart=` says so for that exit, unless it was started `StartLimitBurst=` times within
 * `StartLimitIntervalSec=` (0: no limit). The instance keeps running either way. A pure decision; the caller passes the
 * clock and the service's start times.
 */

export type RestartSetting = "no" | "always" | "on-success" | "on-failure" | "on-abnormal" | "on-abort";
const RESTART_SETTINGS: readonly string[] = ["no", "always", "on-success", "on-failure", "on-abnormal", "on-abort"];

export interface ServiceRestart {
  restart: RestartSetting;
  restartDelayMs: number;
  /** 0: no start limit. */
  startLimitIntervalMs: number;
  startLimitBurst: number;
}

/** How a main process ended: an exit code, or the signal that killed it. */
export interface ProcessExit {
  code: number | null;
  signal: string | null;
}

/** systemd's defaults (DefaultRestartSec=100ms, DefaultStartLimitIntervalSec=10s, DefaultStartLimitBurst=5). */
const DEFAULTS: ServiceRestart = { restart: "no", restartDelayMs: 100, startLimitIntervalMs: 10_000, startLimitBurst: 5 };

const TIME_UNITS_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, sec: 1000, second: 1000, seconds: 1000, m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000, h: 3_600_000, hr: 3_600_000, hour: 3_600_000, hours: 3_600_000 };

/** A systemd time span (`5`, `5s`, `100ms`, `1min 30s`, `infinity`) in ms; a bare number is seconds. */
export function timeSpanMs(text: string): number {
  const value = text.trim();
  if (value === "infinity") return Infinity;
  if (!/^(\d+(\.\d+)?\s*[a-z]*\s*)+$/.test(value)) throw new Error(`not a systemd time span: '${text}'`);
  return [...value.matchAll(/(\d+(?:\.\d+)?)\s*([a-z]*)/g)].reduce((sum, [, amount, unit]) => {
    const scale = unit ? TIME_UNITS_MS[unit] : 1000;
    if (scale === undefined) throw new Error(`not a systemd time unit: '${unit}' in '${text}'`);
    return sum + Number(amount) * scale;
  }, 0);
}

/** The restart settings of a service unit file: `Restart=`, `RestartSec=` ([Service]), `StartLimitIntervalSec=`, `StartLimitBurst=` ([Unit]). */
export function serviceRestartOf(unitFile: string): ServiceRestart {
  const settings = { ...DEFAULTS };
  let section = "";
  for (const raw of unitFile.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const separator = line.indexOf("=");
    const [key, value] = [line.slice(0, separator).trim(), line.slice(separator + 1).trim()];
    if (section === "Service" && key === "Restart") {
      if (!RESTART_SETTINGS.includes(value)) throw new Error(`Restart=${value} is not emulated`);
      settings.restart = value as RestartSetting;
    } else if (section === "Service" && key === "RestartSec") settings.restartDelayMs = timeSpanMs(value);
    else if (section === "Unit" && key === "StartLimitIntervalSec") settings.startLimitIntervalMs = timeSpanMs(value);
    else if (section === "Unit" && key === "StartLimitBurst") settings.startLimitBurst = Number(value);
  }
  return settings;
}

/** A clean exit: code 0, or one of the four signals systemd counts as clean for a service that is not a oneshot. */
const CLEAN_SIGNALS = new Set(["SIGHUP", "SIGINT", "SIGTERM", "SIGPIPE"]);
const isClean = (exit: ProcessExit) => (exit.signal === null ? exit.code === 0 : CLEAN_SIGNALS.has(exit.signal));

function restartsAfter(restart: RestartSetting, exit: ProcessExit): boolean {
  switch (restart) {
    case "no":
      return false;
    case "always":
      return true;
    case "on-success":
      return isClean(exit);
    case "on-failure":
      return !isClean(exit);
    case "on-abnormal":
    case "on-abort":
      return exit.signal !== null && !isClean(exit);
  }
}

export type AfterExit = { restartInMs: number } | { stays: "down" | "failed-start-limit" };

/** What systemd does `nowMs` after the exit of a service started at `startsMs`. */
export function afterExit(service: ServiceRestart, exit: ProcessExit, startsMs: number[], nowMs: number): AfterExit {
  if (!restartsAfter(service.restart, exit)) return { stays: "down" };
  const restartAt = nowMs + service.restartDelayMs;
  const recentStarts = startsMs.filter((start) => start > restartAt - service.startLimitIntervalMs).length;
  if (service.startLimitIntervalMs > 0 && recentStarts >= service.startLimitBurst) return { stays: "failed-start-limit" };
  return { restartInMs: service.restartDelayMs };
}
