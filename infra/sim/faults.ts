/**
 * A per-service fault switch: the next `count` requests (or a `fraction` of them at random) answer throttling or a
 * server error instead of reaching the emulator, so tests can prove that callers retry with backoff.
 */
export type FaultKind = "throttle" | "server-error";

export interface FaultPlan {
  kind: FaultKind;
  /** How many requests to fail; with `fraction`, the most to fail. Unbounded when both are omitted. */
  count?: number;
  /** Probability that a request fails (default 1). */
  fraction?: number;
  /** Only requests whose operation (EC2/IAM Action, SQS target, S3 method) is listed. */
  operations?: string[];
}

export class FaultSwitch {
  private plan: FaultPlan | undefined;
  private remaining = Infinity;
  /** Faults answered since the switch was created. */
  injected = 0;

  set(plan: FaultPlan): void {
    this.plan = plan;
    this.remaining = plan.count ?? Infinity;
  }

  clear(): void {
    this.plan = undefined;
  }

  /** The fault to answer this request with, if any. */
  take(operation: string): FaultKind | undefined {
    const plan = this.plan;
    if (!plan || this.remaining <= 0) return undefined;
    if (plan.operations && !plan.operations.includes(operation)) return undefined;
    if (Math.random() >= (plan.fraction ?? 1)) return undefined;
    this.remaining -= 1;
    this.injected += 1;
    return plan.kind;
  }
}
