/** The behaviour every Bucket must have, local or S3. */
import { expect, test } from "bun:test";
import type { Bucket } from "../../roles/cloud/types.ts";

export function bucketContract(makeBucket: () => Promise<Bucket>): void {
  test("put, get, version, metadata, delete, count", async () => {
    const bucket = await makeBucket();
    expect(await bucket.get("missing")).toBeUndefined();
    expect(await bucket.version("missing")).toBeUndefined();
    expect(await bucket.metadata("missing")).toBeUndefined();
    expect(await bucket.count()).toBe(0);
    await bucket.put("test_00", "Paul", { contentType: "text/plain", metadata: { result: "%7B%7D" } });
    expect(new TextDecoder().decode(await bucket.get("test_00"))).toBe("Paul");
    expect(await bucket.metadata("test_00")).toEqual({ result: "%7B%7D" });
    const first = await bucket.version("test_00");
    await bucket.put("test_00", "Emily");
    expect(await bucket.version("test_00")).not.toBe(first);
    await bucket.put("dir/image.jpg", new Uint8Array([1, 2, 3]));
    expect(await bucket.get("dir/image.jpg")).toEqual(new Uint8Array([1, 2, 3]));
    expect(await bucket.count()).toBe(2);
    await bucket.delete("test_00");
    expect(await bucket.get("test_00")).toBeUndefined();
    expect(await bucket.count()).toBe(1);
  });

}
