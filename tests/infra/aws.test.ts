import { describe, expect, test } from "bun:test";
import { callerAccount } from "../../infra/aws.ts";

describe("the infra scripts' account lookup", () => {
  test("asked once while it succeeds; a failed STS lookup is asked again, not kept", async () => {
    let calls = 0;
    const account = callerAccount(async () => {
      calls++;
      if (calls === 1) throw new Error("Throttling: Rate exceeded");
      return "123456789012";
    });
    await expect(account()).rejects.toThrow("Rate exceeded");
    expect(await account()).toBe("123456789012");
    expect(await account()).toBe("123456789012");
    expect(calls).toBe(2);
  });
});
