/**
 * bench-model.ts --compare: the float32 pipeline, the default one (int8 where its accuracy gate holds) and the all-int8
 * one on the same images on this thread, interleaved image by image so that the machine's load falls on all three alike;
 * per stage the multiply-adds per image, the time and the share of the core's peak. The last line printed is JSON.
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { ModelConfig } from "../model/config.ts";
import { INT8_NETWORKS, type Int8Network } from "../model/build/int8.ts";
import { int8File, ONNX_DIR } from "../model/onnx-session.ts";
import { Recognizer } from "../model/recognizer.ts";
import { loadParts } from "../model/registry.ts";
import type { StageTimings } from "../model/types.ts";
import { corePeak, macsPerImage, observeSessionRuns } from "./yardstick.ts";

type Stage = "detect" | "align" | "embed";
/** The network each stage runs; align's time also holds the crop warp, a small share. */
const STAGE_NETWORK: Record<Stage, string> = { detect: "blazeface-front", align: "landmark68", embed: "dlib-resnet" };
const STAGE_TIMING: Record<Stage, keyof StageTimings> = { detect: "detectMs", align: "alignMs", embed: "embedMs" };
const STAGES = Object.keys(STAGE_NETWORK) as Stage[];

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const round = (x: number, digits = 2) => Number(x.toFixed(digits));

/** `ghz` overrides the clock /proc/cpuinfo reports (a VM's nominal clock; the core may boost above it). */
export async function compareInt8(base: ModelConfig, images: Uint8Array[], rounds: number, ghz?: number): Promise<void> {
  const network = (name: string): Int8Network => INT8_NETWORKS.find((n) => n.network === name)!;
  const float32: ModelConfig = { ...base, detector: STAGE_NETWORK.detect, landmarker: STAGE_NETWORK.align, embedder: STAGE_NETWORK.embed };
  const allInt8: ModelConfig = { ...float32, detector: `${float32.detector}-int8`, landmarker: `${float32.landmarker}-int8`, embedder: `${float32.embedder}-int8` };
  const pipelines = { float32, int8: base, all_int8: allInt8 };
  for (const [name, config] of Object.entries(pipelines)) console.log(`${name}: detector ${config.detector}, landmarker ${config.landmarker}, embedder ${config.embedder}, flip ${config.flip}`);
  const recognizers = Object.fromEntries(
    await Promise.all(Object.entries(pipelines).map(async ([name, config]) => [name, new Recognizer(await loadParts(config, ONNX_DIR), config)] as const)),
  ) as Record<keyof typeof pipelines, Recognizer>;

  // Network images (batch sizes summed) per pipeline image and network, counted on the float32 pipeline's runs.
  const inputs: Record<string, number>[] = images.map(() => ({}));
  const counting = { image: -1 };
  const anySession = await ort.InferenceSession.create(join(ONNX_DIR, network(STAGE_NETWORK.detect).file));
  observeSessionRuns(anySession, (_, input) => {
    const hit = INT8_NETWORKS.find((n) => input.dims[1] === n.inputSize && input.dims[2] === n.inputSize);
    const counts = inputs[counting.image];
    if (hit && counts) counts[hit.network] = (counts[hit.network] ?? 0) + Number(input.dims[0]);
  });
  for (const [i, bytes] of images.entries()) {
    counting.image = i;
    await recognizers.float32.analyzeBytes(bytes);
  }
  counting.image = -1;

  // Per analysis: each stage's milliseconds, and the image's index (for its multiply-adds).
  const samples = Object.fromEntries(Object.keys(pipelines).map((name) => [name, { detect: [] as number[], align: [] as number[], embed: [] as number[], total: [] as number[], cpu: [] as number[], image: [] as number[] }]));
  for (const bytes of images.slice(0, 5)) for (const recognizer of Object.values(recognizers)) await recognizer.analyzeBytes(bytes);
  for (let round = 0; round < rounds; round++) {
    for (const [index, bytes] of images.entries()) {
      for (const [name, recognizer] of Object.entries(recognizers)) {
        const started = performance.now();
        const cpuBefore = process.cpuUsage();
        const { timings } = await recognizer.analyzeBytes(bytes);
        const cpu = process.cpuUsage(cpuBefore);
        const total = performance.now() - started;
        const into = samples[name]!;
        for (const stage of STAGES) into[stage].push(timings[STAGE_TIMING[stage]]);
        into.total.push(total);
        into.cpu.push((cpu.user + cpu.system) / 1000);
        into.image.push(index);
      }
    }
  }

  const peak = corePeak(undefined, ghz);
  const fp32Peak = peak.fp32MacsPerCycle * peak.ghz * 1e9;
  const int8Peak = peak.int8MacsPerCycle * peak.ghz * 1e9;
  console.log(`\ncore peak (upper bound): ${peak.description}`);
  console.log(`  float32 ${(fp32Peak / 1e9).toFixed(1)} GMAC/s, int8 ${(int8Peak / 1e9).toFixed(1)} GMAC/s`);
  console.log(`${images.length} LFW images x ${rounds} rounds, one thread, median ms per image; the three pipelines interleaved image by image`);
  const stages: Record<string, unknown> = {};
  const isInt8 = (config: ModelConfig, stage: Stage) => [config.detector, config.landmarker, config.embedder].includes(`${STAGE_NETWORK[stage]}-int8`);
  for (const stage of STAGES) {
    const name = STAGE_NETWORK[stage];
    const floatMacs = await macsPerImage(join(ONNX_DIR, network(name).file));
    const macsOf = (index: number) => floatMacs * (inputs[index]![name] ?? 0);
    const perImage = inputs.reduce((sum, counts) => sum + (counts[name] ?? 0), 0) / images.length;
    const macs = floatMacs * perImage;
    const of = (...names: (keyof typeof pipelines)[]) => {
      const times = names.flatMap((name) => samples[name]![stage]);
      const image = names.flatMap((name) => samples[name]!.image);
      // The rate is taken per analysis (an image with two faces does twice the work), then its median.
      return { ms: median(times), rate: median(times.map((ms, i) => macsOf(image[i]!) / (ms / 1000))) };
    };
    const [f32, def] = [of("float32"), of("int8")];
    // The int8 figure pools every run of the int8 network: the all-int8 pipeline's, and the default's when it is int8 here.
    const all = isInt8(base, stage) ? of("all_int8", "int8") : of("all_int8");
    const ms = { float32: f32.ms, int8: def.ms, all_int8: all.ms };
    const share = (rate: number, peakRate: number) => rate / peakRate;
    stages[stage] = {
      network: name,
      default: isInt8(base, stage) ? int8File(network(name).file) : network(name).file,
      mmac_per_network_image: round(floatMacs / 1e6, 1),
      network_images_per_image: round(perImage, 2),
      mmac_per_image: round(macs / 1e6, 1),
      float32_ms: round(ms.float32, 3),
      int8_ms: round(ms.all_int8, 3),
      default_ms: round(ms.int8, 3),
      float32_gmac_per_s: round(f32.rate / 1e9, 1),
      int8_gmac_per_s: round(all.rate / 1e9, 1),
      float32_share_of_fp32_peak: round(share(f32.rate, fp32Peak), 3),
      int8_share_of_int8_peak: round(share(all.rate, int8Peak), 3),
      default_share_of_its_peak: round(share(def.rate, isInt8(base, stage) ? int8Peak : fp32Peak), 3),
    };
    console.log(
      `  ${stage.padEnd(6)} ${name.padEnd(16)} ${(macs / 1e6).toFixed(0).padStart(5)} MMAC/image (${perImage.toFixed(2)} x ${(floatMacs / 1e6).toFixed(1)})` +
        ` | float32 ${ms.float32.toFixed(2)} ms, ${(f32.rate / 1e9).toFixed(1)} GMAC/s, ${(100 * share(f32.rate, fp32Peak)).toFixed(1)}% of fp32 peak` +
        ` | int8 ${ms.all_int8.toFixed(2)} ms, ${(all.rate / 1e9).toFixed(1)} GMAC/s, ${(100 * share(all.rate, int8Peak)).toFixed(1)}% of int8 peak` +
        ` | default (${isInt8(base, stage) ? "int8" : "float32"}) ${ms.int8.toFixed(2)} ms`,
    );
  }
  const totals = { float32: median(samples.float32!.total), int8: median(samples.int8!.total), all_int8: median(samples.all_int8!.total) };
  const cpu = { float32: median(samples.float32!.cpu), int8: median(samples.int8!.cpu), all_int8: median(samples.all_int8!.cpu) };
  console.log(`  total (decode included): float32 ${totals.float32.toFixed(2)} ms, default ${totals.int8.toFixed(2)} ms, all int8 ${totals.all_int8.toFixed(2)} ms`);
  console.log(`  CPU time (this process, every thread; other work on the machine does not count): float32 ${cpu.float32.toFixed(2)} ms, default ${cpu.int8.toFixed(2)} ms, all int8 ${cpu.all_int8.toFixed(2)} ms`);
  const perSecond = (ms: number) => round(1000 / ms, 1);
  console.log(
    JSON.stringify({
      float32_images_per_s: perSecond(totals.float32),
      int8_images_per_s: perSecond(totals.int8),
      speedup: round(totals.float32 / totals.int8),
      all_int8_images_per_s: perSecond(totals.all_int8),
      cpu: { float32_images_per_s: perSecond(cpu.float32), int8_images_per_s: perSecond(cpu.int8), speedup: round(cpu.float32 / cpu.int8), all_int8_images_per_s: perSecond(cpu.all_int8) },
      peak: { description: peak.description, fp32_gmac_per_s: round(fp32Peak / 1e9, 1), int8_gmac_per_s: round(int8Peak / 1e9, 1) },
      images: images.length,
      rounds,
      stages,
    }),
  );
}
