/**
 * Which subnets new app instances go in. Instances are kept even across the deployment's subnets (one per
 * availability zone, as an Auto Scaling group balances them), so one zone's outage or shortage takes only its share;
 * a zone out of machines, or without the type, is skipped for the rest of the launch. Pure functions of the counts.
 */

/**
 * EC2's answers that concern one availability zone, not the account: it has no machines of the type for now
 * (InsufficientInstanceCapacity), or does not offer the type at all (Unsupported). The other zones may give them.
 */
export const ZONE_REFUSAL_CODES: readonly string[] = ["InsufficientInstanceCapacity", "Unsupported"];

/** Whether a subnet whose zone refused with `code` is left out of the rest of the launch. */
export const refusedByZone = (code: string) => ZONE_REFUSAL_CODES.includes(code);

/** How many of `count` new instances each subnet takes: each one to the subnet holding fewest, ties to the earlier. */
export function spreadOverSubnets(holding: ReadonlyMap<string, number>, subnets: readonly string[], count: number): Map<string, number> {
  const planned = new Map<string, number>();
  if (subnets.length === 0) return planned;
  const total = (subnet: string) => (holding.get(subnet) ?? 0) + (planned.get(subnet) ?? 0);
  for (let placed = 0; placed < count; placed++) {
    const emptiest = subnets.reduce((best, subnet) => (total(subnet) < total(best) ? subnet : best));
    planned.set(emptiest, (planned.get(emptiest) ?? 0) + 1);
  }
  return planned;
}
