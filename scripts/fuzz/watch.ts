/**
 * What the fuzzer watches besides the answers: the service's resident memory from /proc (the process's VmRSS and
 * VmHWM, and the VmRSS of it and all its descendants), and the health counters of its /metrics.
 */
import { readdirSync, readFileSync } from "node:fs";

/** A field of /proc/<pid>/status in MB, or undefined when the process is gone. */
function statusMb(pid: number, field: "VmRSS" | "VmHWM"): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** `pid` and every process below it. */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // After the command name (which may hold spaces) in parentheses: state, then the parent's pid.
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // ended meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

export interface MemoryPeaks {
  /** The web role's process: the larger of its sampled VmRSS and its VmHWM. */
  webMb: number;
  /** The sum of VmRSS over the process trees of the web role's process and those beside it, at its largest sample. */
  totalMb: number;
}

/** Samples every `everyMs`; calls `onLimit` once when the trees' memory passes `limitMb`. */
export class MemoryWatch {
  readonly peaks: MemoryPeaks = { webMb: 0, totalMb: 0 };
  private readonly timer: ReturnType<typeof setInterval>;
  private tripped = false;

  constructor(
    private readonly pid: number,
    private readonly otherPids: number[],
    everyMs: number,
    private readonly limitMb: number,
    private readonly onLimit: (totalMb: number) => void,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): void {
    const web = Math.max(statusMb(this.pid, "VmRSS") ?? 0, statusMb(this.pid, "VmHWM") ?? 0);
    const total = [this.pid, ...this.otherPids].flatMap(processTree).reduce((sum, pid) => sum + (statusMb(pid, "VmRSS") ?? 0), 0);
    this.peaks.webMb = Math.max(this.peaks.webMb, web);
    this.peaks.totalMb = Math.max(this.peaks.totalMb, total);
    if (!this.tripped && total > this.limitMb) {
      this.tripped = true;
      this.onLimit(total);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export interface HealthCounters {
  /** Times an app instance called itself unhealthy (facefleet_instance_unhealthy_marks_total, every series). */
  unhealthyMarks: number;
  /** Instances the controller replaced (facefleet_instances_replaced_total, every reason). */
  instancesReplaced: number;
}

/** The sum of every sample of `name` in Prometheus text; undefined when the series is not declared at all. */
export function sumSeries(exposition: string, name: string): number | undefined {
  if (!exposition.includes(`# TYPE ${name} `)) return undefined;
  let sum = 0;
  for (const line of exposition.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{.*\})? (\S+)$/.exec(line);
    if (match?.[1] === name) sum += Number(match[2]);
  }
  return sum;
}

/** Reads /metrics; throws when the service does not declare the two counters (an older service). */
export async function healthCounters(url: string): Promise<HealthCounters> {
  const exposition = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const unhealthyMarks = sumSeries(exposition, "facefleet_instance_unhealthy_marks_total");
  const instancesReplaced = sumSeries(exposition, "facefleet_instances_replaced_total");
  if (unhealthyMarks === undefined || instancesReplaced === undefined) throw new Error(`${url}/metrics has no facefleet_instance_unhealthy_marks_total or facefleet_instances_replaced_total`);
  return { unhealthyMarks, instancesReplaced };
}
