import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FaceApiWeights } from "../../../../model/build/face-api/weights.ts";

describe("face-api weights reader", () => {
  const dir = mkdtempSync(join(tmpdir(), "face-api-weights-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("dequantises uint8 and uint16 weights and steps over each weight's own byte size", () => {
    const floats = new Float32Array([1.5, -2.25]);
    const bytes = new Uint8Array([
      ...[0, 2, 255], // uint8: q * 0.5 - 1
      ...new Uint8Array(floats.buffer), // two float32s
      ...[1, 1], // one uint16 (257): q * 2 + 0
    ]);
    writeFileSync(join(dir, "tiny.bin"), bytes);
    writeFileSync(
      join(dir, "tiny-weights_manifest.json"),
      JSON.stringify([
        {
          paths: ["tiny.bin"],
          weights: [
            { name: "a", shape: [3], dtype: "float32", quantization: { dtype: "uint8", scale: 0.5, min: -1 } },
            { name: "b", shape: [1, 2], dtype: "float32" },
            { name: "c", shape: [1], dtype: "float32", quantization: { dtype: "uint16", scale: 2, min: 0 } },
          ],
        },
      ]),
    );
    const weights = FaceApiWeights.read("tiny", dir);
    expect(weights.names).toEqual(["a", "b", "c"]);
    expect(Array.from(weights.get("a").data)).toEqual([-1, 0, 126.5]);
    expect(weights.get("b")).toEqual({ shape: [1, 2], data: floats });
    expect(Array.from(weights.get("c").data)).toEqual([514]);
    expect(() => weights.get("d")).toThrow("missing");
  });

  test("refuses a shard with bytes left over after the last weight", () => {
    writeFileSync(join(dir, "long.bin"), new Uint8Array(5));
    writeFileSync(
      join(dir, "long-weights_manifest.json"),
      JSON.stringify([{ paths: ["long.bin"], weights: [{ name: "a", shape: [1], dtype: "float32" }] }]),
    );
    expect(() => FaceApiWeights.read("long", dir)).toThrow("1 bytes left");
  });
});
