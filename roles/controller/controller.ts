/**
 * The controller loop: every intervalMs read the queue and the fleet (and, when the queue reads empty, the jobs the
 * active instances report holding), ask the policy, apply its actions, and log the decision with its inputs as one
 * JSON line whenever it acts or its inputs change. A scale-out that EC2 cuts short (capacity) sets a cap with backoff
 * that the policy keeps to, the log and health tell.
 */
import { CapacityError, type AppInstance, type Fleet, type JobQueue, type JobReports } from "../cloud/types.ts";
import { errorFields, type Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics.ts";
import { capacityLimit, nextCapacityCap, type CapacityCap } from "./capacity.ts";
import { applyExpectations, type Expectation } from "./expectations.ts";
import { decideScaling, liveHeldJobs, nextIdleSpell, type IdleSpell, type ScalingConfig, type ScalingDecision } from "./policy.ts";

export interface ControllerOptions {
  queue: JobQueue;
  fleet: Fleet;
  reports: JobReports;
  scaling: ScalingConfig;
  intervalMs: number;
  log: Logger;
  metrics: ServiceMetrics;
  now?: () => number;
}

export class Controller {
  private idle: IdleSpell | undefined;
  private cap: CapacityCap | undefined;
  private expectations: Expectation[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private lastInputs = "";
  private tick: Promise<void> = Promise.resolve();

  constructor(private readonly options: ControllerOptions) {}

  start(): void {
    const loop = async () => {
      if (this.stopped) return;
      this.tick = this.step().then(
        () => {},
        (error) => this.options.log.error("controller_step_failed", errorFields(error)),
      );
      await this.tick;
      if (!this.stopped) this.timer = setTimeout(loop, this.options.intervalMs);
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.tick;
  }

  /** For /healthz: whether EC2's capacity holds the fleet back, and until when. */
  health(): Record<string, unknown> {
    const now = this.clock();
    const cap = this.cap;
    return {
      capacity: cap
        ? { limitedTo: cap.limit, reason: cap.reason, shortfalls: cap.shortfalls, retryInMs: Math.max(0, cap.retryAt - now) }
        : "unlimited",
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
    const active = instances.filter((instance) => instance.state === "pending" || instance.state === "running");
    // The reports are read only when the queue reads empty: that is when a scale-in could follow.
    const heldJobs =
      depth.visible + depth.inFlight === 0 && active.length > 0 ? liveHeldJobs(await reports.read(active.map((instance) => instance.id)), now) : undefined;
    this.idle = nextIdleSpell(this.idle, depth, heldJobs, now);
    const decision = decideScaling({ now, queue: depth, instances, heldJobs, idle: this.idle, capacityLimit: capacityLimit(this.cap, now) }, scaling);

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

  /** Each action independently: one failing does not hold back the others' bookkeeping. */
  private async apply(decision: ScalingDecision, now: number): Promise<void> {
    const { fleet } = this.options;
    const expect = (ids: string[], state: Expectation["state"]) => {
      this.expectations.push(...ids.map((id) => ({ id, state, at: now })));
      return ids.length;
    };
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
