import { describe, expect, test } from "bun:test";
import { refusedByZone, spreadOverSubnets } from "../../roles/cloud/aws/zone-spread.ts";

describe("spreadOverSubnets", () => {
  const cases: { name: string; holding: Record<string, number>; subnets: string[]; count: number; planned: Record<string, number> }[] = [
    { name: "an empty fleet: round the subnets", holding: {}, subnets: ["a", "b", "c"], count: 4, planned: { a: 2, b: 1, c: 1 } },
    { name: "the emptiest subnets first", holding: { a: 3, b: 1 }, subnets: ["a", "b", "c"], count: 3, planned: { b: 1, c: 2 } },
    { name: "evens out, then rounds again", holding: { a: 2, b: 1, c: 1 }, subnets: ["a", "b", "c"], count: 5, planned: { a: 1, b: 2, c: 2 } },
    { name: "a subnet left out takes nothing, however empty", holding: { a: 0, b: 4 }, subnets: ["b", "c"], count: 2, planned: { c: 2 } },
    { name: "one subnet takes everything", holding: {}, subnets: ["a"], count: 3, planned: { a: 3 } },
    { name: "nothing asked", holding: {}, subnets: ["a", "b"], count: 0, planned: {} },
    { name: "no subnet", holding: {}, subnets: [], count: 2, planned: {} },
  ];
  for (const { name, holding, subnets, count, planned } of cases) {
    test(name, () => {
      expect(Object.fromEntries(spreadOverSubnets(new Map(Object.entries(holding)), subnets, count))).toEqual(planned);
    });
  }
});

describe("refusedByZone: which EC2 refusals leave the subnet out, the others taking its share", () => {
  const cases: [string, boolean][] = [
    ["InsufficientInstanceCapacity", true],
    // The zone does not offer the type at all (us-east-1e has no t3): no use asking it again.
    ["Unsupported", true],
    // The account's quota is the same in every zone.
    ["VcpuLimitExceeded", false],
    ["InstanceLimitExceeded", false],
    ["InvalidParameterValue", false],
  ];
  for (const [code, leftOut] of cases) test(`${code}: ${leftOut ? "left out" : "kept"}`, () => expect(refusedByZone(code)).toBe(leftOut));
});
