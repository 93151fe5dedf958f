/** A logger that keeps its lines, parsed, for tests to read. */
import { createLogger, type Logger } from "../../roles/log.ts";

export interface LogCapture {
  logger: Logger;
  lines: Record<string, unknown>[];
}

export function captureLogs(): LogCapture {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: createLogger({}, (line) => lines.push(JSON.parse(line))) };
}
