import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OnnxGraph } from "../../model/build/onnx-graph.ts";
import { corePeak, macsPerImage } from "../../scripts/yardstick.ts";

test("multiply-adds per image: a dense and a grouped convolution and a MatMul, as out_h * out_w * out_c * in_c/group * k_h * k_w and M * K * N", async () => {
  const graph = new OnnxGraph("macs");
  const input = graph.input("pixels", ["batch", 4, 8, 8]);
  const dense = graph.node("Conv", [input, graph.constant("w1", [6, 4, 3, 3], new Float32Array(216))], { pads: [1, 1, 1, 1] });
  const grouped = graph.node("Conv", [dense, graph.constant("w2", [6, 3, 3, 3], new Float32Array(162))], { pads: [1, 1, 1, 1], group: 2, strides: [2, 2] });
  const flat = graph.node("Flatten", [grouped]);
  const product = graph.node("MatMul", [flat, graph.constant("w3", [96, 10], new Float32Array(960))]);
  graph.output(graph.identity(product, "scores"), ["batch", 10]);
  const dir = mkdtempSync(join(tmpdir(), "macs-"));
  try {
    writeFileSync(join(dir, "macs.onnx"), graph.serialize());
    // 8*8*6*4*9 + 4*4*6*3*9 + 1*96*10
    expect(await macsPerImage(join(dir, "macs.onnx"))).toBe(13_824 + 2_592 + 960);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the core's peak: Zen 4 counts 16 fp32 and 64 int8 MAC per cycle, an Intel AVX-512 VNNI core 32 and 128, at the given or reported clock", () => {
  const cpuinfo = (vendor: string, flags: string) => `vendor_id\t: ${vendor}\nmodel name\t: X\ncpu MHz\t\t: 2600.000\nflags\t\t: fpu avx2 ${flags}\n`;
  expect(corePeak(cpuinfo("AuthenticAMD", "avx512f avx512_vnni"))).toMatchObject({ ghz: 2.6, fp32MacsPerCycle: 16, int8MacsPerCycle: 64 });
  expect(corePeak(cpuinfo("GenuineIntel", "avx512f avx512_vnni"), 3.5)).toMatchObject({ ghz: 3.5, fp32MacsPerCycle: 32, int8MacsPerCycle: 128 });
  expect(corePeak(cpuinfo("GenuineIntel", ""))).toMatchObject({ fp32MacsPerCycle: 16, int8MacsPerCycle: 32 });
});
