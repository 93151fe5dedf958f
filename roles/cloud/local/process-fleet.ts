/**
 * App "instances" inside this process, with EC2's life cycle: pending -> running -> stopping -> stopped,
 * and shutting-down -> terminated. Starting one calls the factory; stopping stops what it returned.
 */
import { errorFields, type Logger } from "../../log.ts";
import type { AppInstance, Fleet, InstanceState } from "../types.ts";

export interface LocalMachine {
  stop(): Promise<void>;
}

export type MachineFactory = (instanceId: string) => Promise<LocalMachine>;

interface LocalInstance {
  id: string;
  state: InstanceState;
  machine?: LocalMachine;
  /** The transitions of one instance run one after another on this chain, which never rejects. */
  transition: Promise<void>;
}

export class LocalFleet implements Fleet {
  private readonly instances = new Map<string, LocalInstance>();
  private counter = 0;

  constructor(
    private readonly startMachine: MachineFactory,
    private readonly bootDelayMs = 0,
    private readonly log?: Logger,
  ) {}

  async list(): Promise<AppInstance[]> {
    return [...this.instances.values()].filter((i) => i.state !== "terminated").map(({ id, state }) => ({ id, state }));
  }

  async launch(count: number): Promise<string[]> {
    const ids = Array.from({ length: Math.max(0, count) }, () => `i-local${(this.counter++).toString(16).padStart(9, "0")}`);
    for (const id of ids) {
      const instance: LocalInstance = { id, state: "pending", transition: Promise.resolve() };
      this.instances.set(id, instance);
      this.boot(instance);
    }
    return ids;
  }

  /** As on EC2, only stopped instances start; others are left as they are. */
  async start(ids: string[]): Promise<string[]> {
    const stopped = this.find(ids).filter((instance) => instance.state === "stopped");
    for (const instance of stopped) this.boot(instance);
    return stopped.map((instance) => instance.id);
  }

  async stop(ids: string[]): Promise<void> {
    for (const instance of this.find(ids)) {
      if (instance.state === "pending" || instance.state === "running") this.halt(instance, "stopping", "stopped");
    }
  }

  async terminate(ids: string[]): Promise<void> {
    for (const instance of this.find(ids)) {
      if (instance.state !== "shutting-down" && instance.state !== "terminated") this.halt(instance, "shutting-down", "terminated");
    }
  }

  /** Resolves when every transition under way has finished. */
  async settled(): Promise<void> {
    await Promise.all([...this.instances.values()].map((i) => i.transition));
  }

  private boot(instance: LocalInstance): void {
    instance.state = "pending";
    this.enqueue(instance, async () => {
      if (this.bootDelayMs > 0) await Bun.sleep(this.bootDelayMs);
      if (instance.state !== "pending") return;
      try {
        instance.machine = await this.startMachine(instance.id);
      } catch (error) {
        this.log?.error("local_instance_start_failed", { instanceId: instance.id, ...errorFields(error) });
        if (instance.state === "pending") instance.state = "stopped";
        return;
      }
      // A stop or terminate that came in while the machine was starting is queued behind this step; it ends the machine.
      if (instance.state === "pending") instance.state = "running";
    });
  }

  private halt(instance: LocalInstance, during: InstanceState, after: InstanceState): void {
    instance.state = during;
    this.enqueue(instance, async () => {
      const machine = instance.machine;
      instance.machine = undefined;
      try {
        await machine?.stop();
      } catch (error) {
        this.log?.error("local_instance_stop_failed", { instanceId: instance.id, ...errorFields(error) });
      }
      if (instance.state === during) instance.state = after;
    });
  }

  private enqueue(instance: LocalInstance, step: () => Promise<void>): void {
    instance.transition = instance.transition.then(step);
  }

  private find(ids: string[]): LocalInstance[] {
    return ids.map((id) => {
      const instance = this.instances.get(id);
      if (!instance) throw new Error(`no instance ${id}`);
      return instance;
    });
  }
}
