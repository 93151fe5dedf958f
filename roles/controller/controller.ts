/**
 * The controller loop: every intervalMs read the queue and the fleet (and, when the queue reads empty, the jobs the
 * active instances report holding), ask the policy, apply its actions, and log the decision with its inputs as one
 * JSON line whenever it acts or its inputs change. A scale-out that EC2 cuts short (capacity), or whose instances stop
 * again or terminate as they boot, sets a cap with backoff that the policy keeps to, the log and health tell. Instances
 * that report themselves unhealthy, and a fleet that answers nothing while jobs wait, are replaced (fleet-health.ts).
 * The job reports of gone instances are deleted (gone-reports.ts).
 */
import { CapacityError, type AppInstance, type Fleet, type JobQueue, type JobReport, type JobReports } from "../cloud/types.ts";
import { errorFields, type Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics.ts";
import { bootFailureCap, capacityLimit, judgeBoots, nextCapacityCap, type Boot, type CapacityCap } from "./capacity.ts";
import { applyExpectations, type Expectation } from "./expectations.ts";
import { goneReports } from "./gone-reports.ts";
import { decideReplacements, nextProgressWatch, nextRunningSince, sickReplacement, type FleetHealthDecision, type ProgressWatch } from "./fleet-health.ts";
import { decideScaling, liveHeldJobs, nextIdleSpell, type IdleSpell, type ScalingConfig, type ScalingDecision } from "./policy.ts";

export interface ControllerOptions {
  queue: JobQueue;
  fleet: Fleet;
  reports: JobReports;
  scaling: ScalingConfig;
  intervalMs: number;
  /** The whole fleet is replaced when no job is answered for this long while jobs wait; undefined: never. */
  noProgressAfterMs?: number;
  log: Logger;
  metrics: ServiceMetrics;
  now?: () => number;
  /** The controller acts only while this says so: while it holds the deployment's controller lease. */
  mayAct?: () => boolean;
}

/** While the queue holds jobs the reports are read this often (each is one GET per instance), not every tick. */
const BUSY_REPORT_READ_MS = 1_000;

export class Controller {
  private idle: IdleSpell | undefined;
  private cap: CapacityCap | undefined;
  private expectations: Expectation[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private lastInputs = "";
  private tick: Promise<void> = Promise.resolve();
  private watch: ProgressWatch | undefined;
  /** Since when each instance has been listed running. */
  private runningSince: Record<string, number> = {};
  private reportsReadAt = -Infinity;
  private replaced = { sick: 0, stalledFleets: 0 };
  /** Warm instances stopped for reporting sick: sick again once started, they are terminated. */
  private readonly stoppedWhenSick = new Set<string>();
  private lastHealth: FleetHealthDecision | undefined;
  /** When this controller last started or launched each instance: a report written before then is its previous life's. */
  private bootedAt = new Map<string, number>();
  /** Instances this controller started or launched whose boot is still judged (capacity.ts's judgeBoots). */
  private booting = new Map<string, Boot>();
  /** Rounds in a row whose started or launched instances stopped again or terminated as they booted. */
  private bootFailureStreak = 0;
  /** Instances that may have a job report (gone-reports.ts); undefined before the first look. */
  private mayHaveReport: Set<string> | undefined;
  /** The deletion of gone instances' reports under way: off the tick's path, so a slow S3 never delays scaling. */
  private removingReports: Promise<void> | undefined;
  /** The last look found no instance pending or running and the queue empty. */
  private idleAtLastLook = false;
  private stepping = false;
  private jobQueuedWhileStepping = false;

  constructor(private readonly options: ControllerOptions) {}

  start(): void {
    void this.loop();
  }

  /**
   * A job was just queued (by a web role in this process). When the last look found the fleet idle, look again now
   * rather than at the next tick, so the first instance starts at once; otherwise the ticks suffice, and a stream of
   * jobs never adds a look.
   */
  jobQueued(): void {
    if (this.stopped) return;
    // A look under way may have read the queue before the job came: it decides again once it ends.
    if (this.stepping) this.jobQueuedWhileStepping = true;
    else if (this.idleAtLastLook) {
      this.idleAtLastLook = false;
      void this.loop();
    }
  }

  private readonly loop = async (): Promise<void> => {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.stepping = true;
    this.jobQueuedWhileStepping = false;
    this.tick = (this.options.mayAct?.() === false ? Promise.resolve() : this.step()).then(
      () => {},
      (error) => this.options.log.error("controller_step_failed", errorFields(error)),
    );
    await this.tick;
    this.stepping = false;
    if (this.stopped) return;
    const lookAgain = this.jobQueuedWhileStepping && this.idleAtLastLook;
    this.timer = setTimeout(this.loop, lookAgain ? 0 : this.options.intervalMs);
  };

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.tick;
    await this.removingReports;
  }

  /** For /healthz: whether EC2's capacity holds the fleet back, and until when. */
  health(): Record<string, unknown> {
    const now = this.clock();
    const cap = this.cap;
    return {
      capacity: cap
        ? { limitedTo: cap.limit, reason: cap.reason, shortfalls: cap.shortfalls, retryInMs: Math.max(0, cap.retryAt - now) }
        : "unlimited",
      progress: this.lastHealth?.stalledForMs ? { noJobAnsweredForMs: this.lastHealth.stalledForMs } : "ok",
      replaced: this.replaced,
    };
  }

  /** One observation, decision and action; exposed for tests. */
  async step(): Promise<ScalingDecision> {
    const { queue, fleet, reports, scaling, log, metrics } = this.options;
    const now = this.clock();
    const [depth, listed] = await Promise.all([queue.depth(), fleet.list()]);
    const { instances, outstanding } = applyExpectations(listed, this.expectations, now);
    this.expectations = outstanding;
    metrics.fleetObserved(depth, instances);
    this.removingReports ??= this.removeGoneReports(instances).finally(() => (this.removingReports = undefined));
    const active = instances.filter((instance) => instance.state === "pending" || instance.state === "running");
    this.noteBoots(listed, active.length, now);
    const backlog = depth.visible + depth.inFlight;
    this.idleAtLastLook = active.length === 0 && backlog === 0;
    // Every tick when the queue reads empty (a scale-in could follow), else once in a while for health and progress.
    const readReports = active.length > 0 && (backlog === 0 || now - this.reportsReadAt >= BUSY_REPORT_READ_MS);
    const read = readReports ? await reports.read(active.map((instance) => instance.id)) : undefined;
    if (read) this.reportsReadAt = now;
    if (read || active.length === 0) metrics.jobReportsRead(read ?? []);
    const heldJobs = backlog === 0 && read ? liveHeldJobs(read, now) : undefined;
    this.idle = nextIdleSpell(this.idle, depth, heldJobs, now);
    const decision = decideScaling({ now, queue: depth, instances, heldJobs, idle: this.idle, capacityLimit: capacityLimit(this.cap, now) }, scaling);
    if (read || backlog === 0) this.replaceUnhealthy(decision, active, read ?? [], backlog, now);

    const acts = decision.start.length + decision.launch + decision.stop.length + decision.terminate.length > 0;
    const states = countStates(instances);
    const inputs = JSON.stringify([depth.visible, depth.inFlight, heldJobs, states, decision.capped]);
    if (acts || inputs !== this.lastInputs) {
      log.info("scaling_decision", {
        queue: depth,
        heldJobs,
        instances: states,
        unconfirmed: outstanding.length,
        idleForMs: this.idle === undefined ? 0 : now - this.idle.since,
        idleReadings: this.idle?.readings ?? 0,
        start: decision.start,
        launch: decision.launch,
        stop: decision.stop,
        terminate: decision.terminate,
        desired: decision.desired,
        capped: decision.capped,
        reason: decision.reason,
      });
      this.lastInputs = inputs;
    }
    if (acts) await this.apply(decision, now);
    return decision;
  }

  /** Adds to the decision the instances to replace (fleet-health.ts) that it does not stop or terminate already. */
  private replaceUnhealthy(decision: ScalingDecision, active: AppInstance[], read: JobReport[], backlog: number, now: number): void {
    const { scaling, noProgressAfterMs, log, metrics } = this.options;
    const current = read.filter((report) => report.at >= (this.bootedAt.get(report.instanceId) ?? -Infinity));
    // Started again and answering jobs: the instance has recovered, and a later fault is a new one.
    for (const report of current) if (report.healthy !== false && (report.completed ?? 0) > 0) this.stoppedWhenSick.delete(report.instanceId);
    this.watch = nextProgressWatch(this.watch, current, backlog, now);
    // At each reading of the reports, which is at least once a second while there are instances.
    this.runningSince = nextRunningSince(this.runningSince, active, now);
    const health = decideReplacements({ now, active, reports: current, watch: this.watch, runningSince: this.runningSince }, noProgressAfterMs ?? Infinity);
    this.lastHealth = health;
    const leaving = new Set([...decision.stop, ...decision.terminate]);
    // EC2 refuses to stop a pending instance: a warm pool replaces it once it runs.
    const replace = health.replace.filter((id) => !leaving.has(id) && (scaling.poolPolicy === "cold" || active.find((instance) => instance.id === id)?.state === "running"));
    if (replace.length === 0) return;
    if (scaling.poolPolicy === "cold") decision.terminate.push(...replace);
    else if (health.stalled) decision.stop.push(...replace);
    else {
      for (const id of replace) {
        if (sickReplacement(id, this.stoppedWhenSick) === "terminate") {
          decision.terminate.push(id);
          this.stoppedWhenSick.delete(id);
        } else {
          decision.stop.push(id);
          this.stoppedWhenSick.add(id);
        }
      }
    }
    decision.desired -= replace.length;
    if (health.stalled) {
      this.replaced.stalledFleets++;
      metrics.instancesReplaced("no_progress", replace.length);
      // The new instances get the whole period again.
      this.watch = { ...this.watch, since: now };
      log.warn("no_progress", { noJobAnsweredForMs: health.stalledForMs, backlog, replace, reason: health.reason });
    } else {
      this.replaced.sick += replace.length;
      metrics.instancesReplaced("unhealthy", replace.length);
      log.warn("replace_unhealthy", { replace, reason: health.reason });
    }
  }

  /** A report that could not be deleted is tried again at a later tick. */
  private async removeGoneReports(instances: AppInstance[]): Promise<void> {
    const { remove, mayHaveReport } = goneReports(instances, this.mayHaveReport);
    this.mayHaveReport = mayHaveReport;
    if (remove.length === 0) return;
    const results = await Promise.allSettled(remove.map((id) => this.options.reports.remove(id)));
    const failed = remove.filter((_, index) => results[index]!.status === "rejected");
    // Whatever the listing says by then, these may still have a report.
    for (const id of failed) this.mayHaveReport.add(id);
    this.options.log.info("job_reports_removed", { removed: remove.filter((id) => !failed.includes(id)), ...(failed.length > 0 && { failed }) });
  }

  /** Each action independently: one failing does not hold back the others' bookkeeping. */
  private async apply(decision: ScalingDecision, now: number): Promise<void> {
    const { fleet } = this.options;
    const expect = (ids: string[], state: Expectation["state"]) => {
      this.expectations.push(...ids.map((id) => ({ id, state, at: now })));
      if (state === "pending") {
        for (const id of ids) {
          this.bootedAt.set(id, now);
          this.booting.set(id, { since: now });
        }
      }
      return ids.length;
    };
    // Gone after this, they did not fail to boot: this controller ended them (even if the call seems to fail).
    for (const id of decision.terminate) this.booting.delete(id);
    const [started, launched, ...others] = await Promise.allSettled([
      decision.start.length > 0 ? fleet.start(decision.start).then((ids) => expect(ids, "pending")) : 0,
      decision.launch > 0 ? fleet.launch(decision.launch).then((ids) => expect(ids, "pending")) : 0,
      decision.stop.length > 0 && fleet.stop(decision.stop).then(() => expect(decision.stop, "stopping")),
      decision.terminate.length > 0 && fleet.terminate(decision.terminate).then(() => expect(decision.terminate, "shutting-down")),
    ]);
    const scaleOut = [started!, launched!];
    const failure = [...scaleOut, ...others].find((result) => result.status === "rejected" && !(result.reason instanceof CapacityError));
    if (failure?.status === "rejected") throw failure.reason;
    const asked = decision.start.length + decision.launch;
    const got = scaleOut.reduce((sum, result) => sum + (result.status === "fulfilled" ? result.value : 0), 0);
    const capacityError = scaleOut.find((result) => result.status === "rejected")?.reason as CapacityError | undefined;
    this.noteCapacity({ asked, got, active: decision.desired - asked + got, error: capacityError?.code, capped: decision.capped }, now);
  }

  /**
   * Started or launched instances that stop again or terminate as they boot are a capacity refusal, backed off like one.
   * Judged on the listing as read, not as the expectations lay over it: an instance they add was never listed.
   */
  private noteBoots(listed: AppInstance[], active: number, now: number): void {
    const { failed, booted, watching } = judgeBoots(listed, this.booting, now);
    this.booting = watching;
    if (booted.length > 0) this.bootFailureStreak = 0;
    if (failed.length === 0) return;
    this.bootFailureStreak += 1;
    this.cap = bootFailureCap(failed, this.bootFailureStreak, active, now);
    this.options.log.warn("capacity_cap", { limitedTo: this.cap.limit, reason: this.cap.reason, shortfalls: this.cap.shortfalls, retryInMs: this.cap.retryAt - now, failed: failed.map((instance) => instance.id) });
  }

  private noteCapacity(outcome: Parameters<typeof nextCapacityCap>[1], now: number): void {
    const before = this.cap;
    this.cap = nextCapacityCap(before, outcome, now);
    if (this.cap && this.cap !== before) {
      this.options.log.warn("capacity_cap", { limitedTo: this.cap.limit, reason: this.cap.reason, shortfalls: this.cap.shortfalls, retryInMs: this.cap.retryAt - now, asked: outcome.asked, got: outcome.got });
    } else if (before && !this.cap) {
      this.options.log.info("capacity_cap_lifted", { asked: outcome.asked, got: outcome.got });
    }
  }

  private clock(): number {
    return (this.options.now ?? Date.now)();
  }
}

function countStates(instances: AppInstance[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { state } of instances) counts[state] = (counts[state] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}
