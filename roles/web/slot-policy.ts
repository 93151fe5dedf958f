/**
 * Who reads a body next: a pure decision on the slots' state, the thin loop with its timers is `upload-slots.ts`.
 * A client (one address) reads at most `perClient` bodies at once; its further requests wait, and others overtake
 * them. Waiting is first come first served among the clients under their cap. When the queue is full, a newcomer
 * takes the place of the newest waiter of the client with the most waiters, if that client has at least two more than
 * the newcomer's: the queue is shared out by client, so one address cannot fill it and lock everyone else out.
 */

export interface SlotLimits {
  /** Bodies read at once. */
  capacity: number;
  /** Bodies one client reads at once. */
  perClient: number;
  /** Requests that may wait. */
  maxQueued: number;
}

export interface SlotState {
  /** Bodies each client is reading; a client reading none may be absent. */
  reading: ReadonlyMap<string, number>;
  readingTotal: number;
  /** The client of each waiting request, first come first. */
  queue: readonly string[];
}

/**
 * `read`: take a slot now. `wait`: join the queue, after `evict` (a queue index) is turned away. `refuse`:
 * `over_share` when the client already has its share of slots and places, `busy` when it has none and still no place.
 */
export type Arrival = { kind: "read" } | { kind: "wait"; evict?: number } | { kind: "refuse"; reason: "over_share" | "busy" };

export function onArrival(state: SlotState, limits: SlotLimits, client: string): Arrival {
  const reading = state.reading.get(client) ?? 0;
  // Every waiter is a client at its cap while slots are free (a release grants the first one that is not), so a
  // newcomer under its cap overtakes no one who could read.
  if (state.readingTotal < limits.capacity && reading < limits.perClient) return { kind: "read" };
  if (state.queue.length < limits.maxQueued) return { kind: "wait" };
  const waiting = countByClient(state.queue);
  const mine = waiting.get(client) ?? 0;
  let hog: string | undefined;
  for (const [other, count] of waiting) if (hog === undefined || count > waiting.get(hog)!) hog = other;
  if (hog !== undefined && waiting.get(hog)! > mine + 1) return { kind: "wait", evict: state.queue.lastIndexOf(hog) };
  return { kind: "refuse", reason: mine > 0 || reading > 0 ? "over_share" : "busy" };
}

/** The queue index of the next waiter to read once a slot is free: the first whose client is under its cap. */
export function nextGrant(state: SlotState, limits: SlotLimits): number | undefined {
  if (state.readingTotal >= limits.capacity) return undefined;
  const index = state.queue.findIndex((client) => (state.reading.get(client) ?? 0) < limits.perClient);
  return index === -1 ? undefined : index;
}

function countByClient(queue: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const client of queue) counts.set(client, (counts.get(client) ?? 0) + 1);
  return counts;
}
