/**
 * The controller loop: every intervalMs read the queue and the fleet, ask the policy, apply its actions, and log
 * the decision with its inputs as one JSON line whenever it acts or its inputs change.
 */
import type { AppInstance, Fleet, JobQueue } from "../cloud/types.ts";
import { errorFields, type Logger } from "../log.ts";
import { applyExpectations, type Expectation } from "./expectations.ts";
import { decideScaling, type ScalingConfig, type ScalingDecision } from "./policy.ts";

export interface ControllerOptions {
  queue: JobQueue;
  fleet: Fleet;
  scaling: ScalingConfig;
  intervalMs: number;
  log: Logger;
  now?: () => number;
}

export class Controller {
  private idleSince: number | undefined;
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

  /** One observation, decision and action; exposed for tests. */
  async step(): Promise<ScalingDecision> {
    const { queue, fleet, scaling, log } = this.options;
    const now = (this.options.now ?? Date.now)();
    const [depth, listed] = await Promise.all([queue.depth(), fleet.list()]);
    const { instances, outstanding } = applyExpectations(listed, this.expectations, now);
    this.expectations = outstanding;
    this.idleSince = depth.visible + depth.inFlight > 0 ? undefined : (this.idleSince ?? now);
    const decision = decideScaling({ now, queue: depth, instances, idleSince: this.idleSince }, scaling);

    const acts = decision.start.length + decision.launch + decision.stop.length + decision.terminate.length > 0;
    const states = countStates(instances);
    const inputs = JSON.stringify([depth.visible, depth.inFlight, states]);
    if (acts || inputs !== this.lastInputs) {
      log.info("scaling_decision", {
        queue: depth,
        instances: states,
        unconfirmed: outstanding.length,
        idleForMs: this.idleSince === undefined ? 0 : now - this.idleSince,
        start: decision.start,
        launch: decision.launch,
        stop: decision.stop,
        terminate: decision.terminate,
        desired: decision.desired,
        reason: decision.reason,
      });
      this.lastInputs = inputs;
    }
    if (acts) await this.apply(decision, now);
    return decision;
  }

  /** Each action independently: one failing (say, a capacity error) does not hold back the others' bookkeeping. */
  private async apply(decision: ScalingDecision, now: number): Promise<void> {
    const { fleet } = this.options;
    const expect = (ids: string[], state: Expectation["state"]) => this.expectations.push(...ids.map((id) => ({ id, state, at: now })));
    const results = await Promise.allSettled([
      decision.start.length > 0 && fleet.start(decision.start).then(() => expect(decision.start, "pending")),
      decision.launch > 0 && fleet.launch(decision.launch).then((ids) => expect(ids, "pending")),
      decision.stop.length > 0 && fleet.stop(decision.stop).then(() => expect(decision.stop, "stopping")),
      decision.terminate.length > 0 && fleet.terminate(decision.terminate).then(() => expect(decision.terminate, "shutting-down")),
    ]);
    const failure = results.find((result) => result.status === "rejected");
    if (failure) throw failure.reason;
  }
}

function countStates(instances: AppInstance[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { state } of instances) counts[state] = (counts[state] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}
