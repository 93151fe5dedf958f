/** The behaviour every Bucket must have, local or S3. */
import { expect, test } from "bun:test";
import { InvalidKeyError, type Bucket } from "../../roles/cloud/types.ts";

/** A fresh, empty bucket. */
export type BucketFactory = () => Promise<Bucket>;

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));

/** A stream of `count` chunks of `size` bytes, each filled with its index; then it ends, or errors with `failWith`. */
function chunks(count: number, size: number, failWith?: Error): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent === count) return failWith ? controller.error(failWith) : controller.close();
      controller.enqueue(new Uint8Array(size).fill(sent++));
    },
  });
}

export function bucketContract(makeBucket: BucketFactory): void {
  test("put, get, version, metadata, delete, count", async () => {
    const bucket = await makeBucket();
    expect(await bucket.count()).toBe(0);
    await bucket.put("test_00", "Paul", { contentType: "text/plain", metadata: { result: "%7B%7D" } });
    expect(text(await bucket.get("test_00"))).toBe("Paul");
    expect(await bucket.metadata("test_00")).toEqual({ result: "%7B%7D" });
    const first = await bucket.version("test_00");
    expect(first).toBeString();
    expect(await bucket.version("test_00")).toBe(first!);
    await bucket.put("test_00", "Emily");
    expect(await bucket.version("test_00")).not.toBe(first!);
    expect(await bucket.metadata("test_00")).toEqual({});
    await bucket.put("dir/image.jpg", new Uint8Array([0, 1, 2, 255]));
    expect(await bucket.get("dir/image.jpg")).toEqual(new Uint8Array([0, 1, 2, 255]));
    expect(await bucket.count()).toBe(2);
    await bucket.delete("test_00");
    expect(await bucket.get("test_00")).toBeUndefined();
    expect(await bucket.version("test_00")).toBeUndefined();
    expect(await bucket.count()).toBe(1);
  });

  test("a missing key is undefined everywhere, and deleting it is no error", async () => {
    const bucket = await makeBucket();
    expect(await bucket.get("missing")).toBeUndefined();
    expect(await bucket.version("missing")).toBeUndefined();
    expect(await bucket.metadata("missing")).toBeUndefined();
    await bucket.delete("missing");
    expect(await bucket.count()).toBe(0);
  });

  test("an empty object is an object", async () => {
    const bucket = await makeBucket();
    await bucket.put("empty", new Uint8Array());
    expect(await bucket.get("empty")).toEqual(new Uint8Array());
    expect(await bucket.count()).toBe(1);
  });

  test("keys with dot segments are refused, touching nothing", async () => {
    const bucket = await makeBucket();
    await bucket.put("etc/passwd", "inside");
    for (const key of ["../../etc/passwd", "a/../../b", "..", "./x", "a/./b", ""]) {
      await expect(bucket.put(key, "hostile")).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(bucket.get(key)).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(bucket.delete(key)).rejects.toBeInstanceOf(InvalidKeyError);
    }
    expect(text(await bucket.get("etc/passwd"))).toBe("inside");
    expect(await bucket.count()).toBe(1);
  });

  test("unusual keys are just keys: each its own object, none touching another", async () => {
    const bucket = await makeBucket();
    const keys = ["%2e%2e", "..%2F..%2Fetc", "...", "a..b/..c", "a//b", "back\\slash", "-/ünï cødé 名前.jpg", "k".repeat(1000)];
    for (const key of keys) await bucket.put(key, `body of ${key}`);
    for (const key of keys) expect(text(await bucket.get(key))).toBe(`body of ${key}`);
    expect(await bucket.get("etc")).toBeUndefined();
    expect(await bucket.get("a/b")).toBeUndefined();
    expect(await bucket.count()).toBe(keys.length);
    await bucket.delete("%2e%2e");
    expect(text(await bucket.get("..%2F..%2Fetc"))).toBe("body of ..%2F..%2Fetc");
    expect(await bucket.count()).toBe(keys.length - 1);
  });

  test("concurrent writers of one key leave one whole body, never a mix", async () => {
    const bucket = await makeBucket();
    const bodies = ["a", "b", "c", "d"].map((letter) => letter.repeat(256 * 1024));
    await Promise.all(bodies.map((body) => bucket.put("contested", body)));
    expect(bodies).toContain(text(await bucket.get("contested"))!);
    expect(await bucket.count()).toBe(1);
  });

  test("putStream stores every chunk in order, past S3's 5 MiB part size", async () => {
    const bucket = await makeBucket();
    await bucket.putStream("streamed.jpg", chunks(13, 512 * 1024), { contentType: "image/jpeg" });
    const stored = await bucket.get("streamed.jpg");
    expect(stored?.byteLength).toBe(13 * 512 * 1024);
    for (let index = 0; index < 13; index++) expect(stored![index * 512 * 1024]).toBe(index);
    await bucket.putStream("small", chunks(2, 10));
    expect(await bucket.get("small")).toEqual(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
    expect(await bucket.count()).toBe(2);
  });

  test("a stream that errors stores nothing, short or past a part, and its error is thrown", async () => {
    const bucket = await makeBucket();
    const refusal = new Error("the body went over the limit");
    await expect(bucket.putStream("short", chunks(2, 1000, refusal))).rejects.toBe(refusal);
    await expect(bucket.putStream("long", chunks(12, 512 * 1024, refusal))).rejects.toBe(refusal);
    expect(await bucket.get("short")).toBeUndefined();
    expect(await bucket.get("long")).toBeUndefined();
    expect(await bucket.count()).toBe(0);
  });

  test("conditional put: creates only what is missing, replaces only the version it names", async () => {
    const bucket = await makeBucket();
    const created = await bucket.putIf("lease", "first", undefined, { contentType: "application/json", metadata: { holder: "a" } });
    expect(created).toBeString();
    expect(await bucket.putIf("lease", "second", undefined)).toBeUndefined();
    expect(await bucket.read("lease")).toEqual({ body: new TextEncoder().encode("first"), version: created! });
    expect(await bucket.version("lease")).toBe(created!);
    expect(await bucket.metadata("lease")).toEqual({ holder: "a" });
    const replaced = await bucket.putIf("lease", "third", created);
    expect(replaced).toBeString();
    expect(replaced).not.toBe(created!);
    expect(await bucket.putIf("lease", "stale", created)).toBeUndefined();
    await bucket.put("lease", "plain");
    expect(await bucket.putIf("lease", "stale again", replaced)).toBeUndefined();
    expect(text(await bucket.get("lease"))).toBe("plain");
    expect(await bucket.putIf("missing", "x", replaced)).toBeUndefined();
    expect(await bucket.read("missing")).toBeUndefined();
    expect(await bucket.count()).toBe(1);
  });

  test("conditional put: concurrent read-modify-write loops lose no update", async () => {
    const bucket = await makeBucket();
    const increment = async () => {
      for (;;) {
        const stored = await bucket.read("counter");
        const next = String(Number(text(stored?.body) ?? "0") + 1);
        if ((await bucket.putIf("counter", next, stored?.version)) !== undefined) return;
      }
    };
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let round = 0; round < 5; round++) await increment();
    }));
    expect(text(await bucket.get("counter"))).toBe("40");
  });

  test("conditional creates of one key at once: exactly one is stored, the others told it exists", async () => {
    const bucket = await makeBucket();
    const answers = await Promise.all(Array.from({ length: 8 }, (_, writer) => bucket.putIf("log/0001", `writer ${writer}`, undefined)));
    const winners = answers.flatMap((version, writer) => (version === undefined ? [] : [writer]));
    expect(winners).toHaveLength(1);
    expect(text(await bucket.get("log/0001"))).toBe(`writer ${winners[0]}`);
  });

  // Digits and lower-case letters only: the emulated S3 (fauxqs) sorts with localeCompare, not by UTF-8 bytes as S3 does.
  test("list: the keys under a prefix after a key, in order", async () => {
    const bucket = await makeBucket();
    expect(await bucket.list("log/")).toEqual([]);
    for (const key of ["log/0003", "log/0001", "log/0010", "logs", "other/0002", "log/0002", "log/z"]) await bucket.put(key, key);
    expect(await bucket.list("log/")).toEqual(["log/0001", "log/0002", "log/0003", "log/0010", "log/z"]);
    expect(await bucket.list("log/", "log/0002")).toEqual(["log/0003", "log/0010", "log/z"]);
    expect(await bucket.list("log/", "log/0002x")).toEqual(["log/0003", "log/0010", "log/z"]);
    expect(await bucket.list("log/", "log/z")).toEqual([]);
    await bucket.delete("log/0003");
    expect(await bucket.list("log/0")).toEqual(["log/0001", "log/0002", "log/0010"]);
  });

  test("conditional put refuses keys with dot segments", async () => {
    const bucket = await makeBucket();
    await expect(bucket.putIf("../x", "hostile", undefined)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(bucket.read("a/../b")).rejects.toBeInstanceOf(InvalidKeyError);
  });
}
