/** The behaviour every Fleet must have, local or EC2: EC2's instance life cycle, seen through list(). */
import { expect, test } from "bun:test";
import type { AppInstance, Fleet, InstanceState } from "../../roles/cloud/types.ts";

/** A fresh fleet with no instances, whose instances take `bootDelayMs` to go from pending to running. */
export type FleetFactory = (options: { bootDelayMs: number }) => Promise<Fleet>;

const stateOf = (instances: AppInstance[], id: string): InstanceState | undefined => instances.find((i) => i.id === id)?.state;

/** Polls list() until `done` holds; the states seen on the way are returned, in order, without repeats. */
export async function listUntil(fleet: Fleet, id: string, done: (state: InstanceState | undefined) => boolean, timeoutMs = 10_000): Promise<(InstanceState | undefined)[]> {
  const seen: (InstanceState | undefined)[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = stateOf(await fleet.list(), id);
    if (seen.at(-1) !== state || seen.length === 0) seen.push(state);
    if (done(state)) return seen;
    if (Date.now() > deadline) throw new Error(`${id} still ${state} after ${timeoutMs} ms (seen ${seen.join(" -> ")})`);
    await Bun.sleep(10);
  }
}

export function fleetContract(makeFleet: FleetFactory): void {
  test("a new fleet is empty; launching 0 launches nothing", async () => {
    const fleet = await makeFleet({ bootDelayMs: 0 });
    expect(await fleet.list()).toEqual([]);
    expect(await fleet.launch(0)).toEqual([]);
    expect(await fleet.list()).toEqual([]);
  });

  test("launched instances are listed at once, pending, then running", async () => {
    const fleet = await makeFleet({ bootDelayMs: 300 });
    const ids = await fleet.launch(3);
    expect(new Set(ids).size).toBe(3);
    const listed = await fleet.list();
    expect(listed.map((i) => i.id).sort()).toEqual([...ids].sort());
    for (const id of ids) expect(stateOf(listed, id)).toBe("pending");
    for (const id of ids) {
      const seen = await listUntil(fleet, id, (s) => s === "running");
      expect(seen.filter((s) => s !== "pending")).toEqual(["running"]);
    }
  });

  test("stop -> stopped (still listed), start -> running again, terminate -> gone", async () => {
    const fleet = await makeFleet({ bootDelayMs: 0 });
    const [id] = await fleet.launch(1);
    await listUntil(fleet, id!, (s) => s === "running");
    await fleet.stop([id!]);
    expect(["stopping", "stopped"]).toContain(stateOf(await fleet.list(), id!)!);
    await listUntil(fleet, id!, (s) => s === "stopped");
    await fleet.start([id!]);
    expect(["pending", "running"]).toContain(stateOf(await fleet.list(), id!)!);
    await listUntil(fleet, id!, (s) => s === "running");
    await fleet.terminate([id!]);
    expect([undefined, "shutting-down"]).toContain(stateOf(await fleet.list(), id!));
    await listUntil(fleet, id!, (s) => s === undefined);
  });

  test("an instance terminated while pending never runs", async () => {
    const fleet = await makeFleet({ bootDelayMs: 500 });
    const [id] = await fleet.launch(1);
    await fleet.terminate([id!]);
    const seen = await listUntil(fleet, id!, (s) => s === undefined);
    expect(seen).not.toContain("running");
  });

  test("start, stop and terminate of nothing do nothing", async () => {
    const fleet = await makeFleet({ bootDelayMs: 0 });
    await fleet.start([]);
    await fleet.stop([]);
    await fleet.terminate([]);
    expect(await fleet.list()).toEqual([]);
  });
}
