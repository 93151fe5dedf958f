/** The controller loop: read the queue and the fleet, ask the policy, apply its actions, log each decision with its inputs. */
import type { Fleet, JobQueue } from "../cloud/types.ts";
import { errorFields, type Logger } from "../log.ts";
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

  /** One observation and decision; exposed for tests. */
  async step(): Promise<ScalingDecision> {
    const { queue, fleet, scaling, log } = this.options;
    const now = (this.options.now ?? Date.now)();
    const [depth, instances] = await Promise.all([queue.depth(), fleet.list()]);
    const backlog = depth.visible + depth.inFlight;
    this.idleSince = backlog > 0 ? undefined : (this.idleSince ?? now);
    const decision = decideScaling({ now, queue: depth, instances, idleSince: this.idleSince }, scaling);
    const acts = decision.start.length + decision.launch + decision.stop.length + decision.terminate.length > 0;
    const states = instances.map((instance) => instance.state).sort().join(",");
    const inputs = `${depth.visible}/${depth.inFlight}/${states}`;
    if (acts || inputs !== this.lastInputs) {
      log.info("scaling_decision", {
        queue: depth,
        instances: countStates(instances.map((instance) => instance.state)),
        start: decision.start.length,
        launch: decision.launch,
        stop: decision.stop.length,
        terminate: decision.terminate.length,
        desired: decision.desired,
        reason: decision.reason,
      });
      this.lastInputs = inputs;
    }
    await Promise.all([
      fleet.start(decision.start),
      decision.launch > 0 ? fleet.launch(decision.launch) : undefined,
      fleet.stop(decision.stop),
      fleet.terminate(decision.terminate),
    ]);
    return decision;
  }
}

function countStates(states: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const state of states) counts[state] = (counts[state] ?? 0) + 1;
  return counts;
}
