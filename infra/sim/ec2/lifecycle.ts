/**
 * Instance state machine: pending -> running -> stopping -> stopped, and shutting-down -> terminated, with the boot,
 * start and stop delays of the region. Entering `running` starts the instance's process; stop and terminate end it. A
 * service's process that ends by itself leaves the instance running (and billing) while its unit restarts it or not,
 * as systemd would (systemd.ts); a script's is an instance-initiated shutdown (stop, or terminate if the instance
 * says so).
 */
import { join } from "node:path";
import type { Instance, InstanceStateName } from "./model.ts";
import { spawnInstanceProcess, type InstanceProcess, type ProcessSpec } from "./process.ts";
import { afterExit } from "./systemd.ts";

export interface LifecycleOptions {
  /** pending -> running after RunInstances. */
  bootDelayMs: number;
  /** pending -> running after StartInstances of a stopped instance. */
  startDelayMs: number;
  stopDelayMs: number;
  /** Between SIGTERM and SIGKILL when an instance stops. */
  killGraceMs: number;
  logDir: string;
  /** The process the instance runs while it is running; undefined runs none. */
  processFor(instance: Instance): ProcessSpec | undefined;
}

export interface RunningProcess {
  instanceId: string;
  pid: number;
  logPath: string;
}

export class InstanceLifecycle {
  private readonly processes = new Map<string, InstanceProcess>();
  private readonly generations = new Map<string, number>();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly options: LifecycleOptions) {}

  launch(instance: Instance): void {
    this.enter(instance, "pending");
    this.boot(instance, this.options.bootDelayMs);
  }

  start(instance: Instance): void {
    if (instance.state !== "stopped") return;
    this.enter(instance, "pending");
    this.boot(instance, this.options.startDelayMs);
  }

  /**
   * A launch (then `terminated`) or start (then `stopped`) EC2 accepts but cannot carry out, as when the volume's KMS
   * key refuses it: pending, then shut down with the reason, no process ever run.
   */
  failBoot(instance: Instance, final: "stopped" | "terminated", reason: NonNullable<Instance["stateReason"]>): void {
    if (final === "stopped" && instance.state !== "stopped") return;
    const generation = this.enter(instance, "pending");
    this.track(
      Bun.sleep(final === "stopped" ? this.options.startDelayMs : this.options.bootDelayMs).then(() => {
        if (this.current(instance, generation)) this.shutDown(instance, final === "stopped" ? "stopping" : "shutting-down", final, reason);
      }),
    );
  }

  stop(instance: Instance): void {
    if (instance.state !== "running") return;
    this.shutDown(instance, "stopping", "stopped", { code: "Client.UserInitiatedShutdown", message: "Client.UserInitiatedShutdown: User initiated shutdown" });
  }

  terminate(instance: Instance): void {
    if (instance.state === "shutting-down" || instance.state === "terminated") return;
    this.shutDown(instance, "shutting-down", "terminated", { code: "Client.UserInitiatedShutdown", message: "Client.UserInitiatedShutdown: User initiated shutdown" });
  }

  logPath(instanceId: string): string {
    return join(this.options.logDir, `${instanceId}.log`);
  }

  /** Sends a signal to the instance's process, as a fault would (SIGKILL: the process dies, its unit restarts it). */
  signal(instanceId: string, signal: NodeJS.Signals): boolean {
    const process = this.processes.get(instanceId);
    process?.signal(signal);
    return process !== undefined;
  }

  running(): RunningProcess[] {
    return [...this.processes].map(([instanceId, process]) => ({ instanceId, pid: process.pid, logPath: this.logPath(instanceId) }));
  }

  /** Ends every process and waits for the transitions under way. */
  async shutdownAll(): Promise<void> {
    for (const id of this.generations.keys()) this.generations.set(id, (this.generations.get(id) ?? 0) + 1);
    await Promise.all([...this.processes.values()].map((process) => process.stop(this.options.killGraceMs)));
    await Promise.allSettled([...this.pending]);
  }

  private enter(instance: Instance, state: InstanceStateName, reason?: Instance["stateReason"]): number {
    instance.state = state;
    instance.stateReason = reason;
    const generation = (this.generations.get(instance.id) ?? 0) + 1;
    this.generations.set(instance.id, generation);
    return generation;
  }

  private current(instance: Instance, generation: number): boolean {
    return this.generations.get(instance.id) === generation;
  }

  private track(work: Promise<unknown>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private boot(instance: Instance, delayMs: number): void {
    const generation = this.generations.get(instance.id)!;
    this.track(
      Bun.sleep(delayMs).then(() => {
        if (!this.current(instance, generation)) return;
        this.enter(instance, "running");
        this.spawn(instance);
      }),
    );
  }

  /** Starts the instance's process; a service's again, under the same boot, with the times it was started before. */
  private spawn(instance: Instance, spec = this.options.processFor(instance), startsMs: number[] = []): void {
    if (!spec) return;
    const process = spawnInstanceProcess(spec, this.logPath(instance.id));
    startsMs.push(Date.now());
    this.processes.set(instance.id, process);
    const generation = this.generations.get(instance.id)!;
    const stillUp = () => this.current(instance, generation) && instance.state === "running";
    void process.exited.then((exit) => {
      if (this.processes.get(instance.id) === process) this.processes.delete(instance.id);
      if (!stillUp()) return;
      if (spec.service) {
        const next = afterExit(spec.service, exit, startsMs, Date.now());
        // Not tracked: a shutdown need not wait out RestartSec, and the instance is no longer up when it ends.
        if ("restartInMs" in next) void Bun.sleep(next.restartInMs).then(() => stillUp() && this.spawn(instance, spec, startsMs));
        return;
      }
      const reason = { code: "Client.InstanceInitiatedShutdown", message: "Client.InstanceInitiatedShutdown: Instance initiated shutdown" };
      if (instance.shutdownBehavior === "terminate") this.shutDown(instance, "shutting-down", "terminated", reason);
      else this.shutDown(instance, "stopping", "stopped", reason);
    });
  }

  private shutDown(instance: Instance, transient: InstanceStateName, final: InstanceStateName, reason: Instance["stateReason"]): void {
    const generation = this.enter(instance, transient, reason);
    const process = this.processes.get(instance.id);
    this.track(
      Promise.all([process?.stop(this.options.killGraceMs), Bun.sleep(this.options.stopDelayMs)]).then(() => {
        if (this.current(instance, generation)) this.enter(instance, final, reason);
      }),
    );
  }
}
