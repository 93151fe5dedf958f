/**
 * End to end through the public surface: photos from lfw-devtrain go through the worker pool, people are enrolled in a
 * gallery, other photos of them are recognised, and strangers are turned away in open-set mode.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import sharp from "sharp";
import { Gallery } from "../../model/gallery.ts";
import { InferencePool, ModelConfigSchema, ONNX_DIR, thresholdFor, type ModelConfig } from "../../model/index.ts";
import { DlibResNetEmbedder } from "../../model/embedders/dlib-resnet.ts";
import { HAVE_LFW, LFW_DIR } from "./support/lfw.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

const config = Value.Default(ModelConfigSchema, {}) as ModelConfig;
const threshold = thresholdFor(config).at(1);
const imagesDir = join(LFW_DIR, "images");

/** Eight people with at least three photos (two enrolled, the third to recognise) and eight strangers with one. */
function castOfPeople(): { known: string[]; strangers: string[] } {
  const people = readdirSync(imagesDir).sort();
  const photos = (person: string) => readdirSync(join(imagesDir, person)).sort();
  return {
    known: people.filter((p) => photos(p).length >= 3).filter((_, i) => i % 30 === 0).slice(0, 8),
    strangers: people.filter((p) => photos(p).length === 1).filter((_, i) => i % 150 === 0).slice(0, 8),
  };
}

let pool: InferencePool | undefined;
beforeAll(async () => {
  if (HAVE_LFW) pool = await InferencePool.create({ config, workers: 2 });
});
afterAll(() => pool?.close());

async function embedding(person: string, photo: number): Promise<Float32Array> {
  const file = join(imagesDir, person, readdirSync(join(imagesDir, person)).sort()[photo]!);
  const analysis = await pool!.analyze(new Uint8Array(await Bun.file(file).arrayBuffer()));
  expect(analysis.faces.length).toBeGreaterThan(0);
  const central = analysis.faces.find((face) => !face.wholeImage);
  expect(central).toBeDefined();
  return central!.embedding;
}

test.skipIf(!HAVE_LFW)("recognises enrolled people from new photos and rejects strangers in open-set mode", async () => {
  const { known, strangers } = castOfPeople();
  expect(known.length).toBe(8);
  expect(strangers.length).toBe(8);
  const [enrolment, probes, strangerProbes] = await Promise.all([
    Promise.all(known.flatMap((person) => [0, 1].map(async (photo) => ({ person, embedding: await embedding(person, photo) })))),
    Promise.all(known.map((person) => embedding(person, 2))),
    Promise.all(strangers.map((person) => embedding(person, 0))),
  ]);
  const gallery = new Gallery(enrolment[0]!.embedding.length);
  for (const { person, embedding } of enrolment) gallery.enroll(person, embedding);

  // Closed set: every probe's nearest subject is the right person.
  let accepted = 0;
  known.forEach((person, i) => {
    const [best, runnerUp] = gallery.search(probes[i]!, 2);
    expect(best?.subject).toBe(person);
    expect(runnerUp!.similarity).toBeLessThan(best!.similarity);
    if (best!.similarity >= threshold) accepted++;
  });
  // Open set: the threshold is set for a false accept rate of 1e-3, which on lfw-devtrain still accepts about 93% of
  // genuine pairs, so most (not necessarily all) known people are accepted and every stranger is turned away.
  expect(accepted).toBeGreaterThanOrEqual(6);
  for (const stranger of strangerProbes) {
    const [best] = gallery.search(stranger, 1);
    expect(best!.similarity).toBeLessThan(threshold);
  }
});

test.skipIf(!HAVE_LFW)("an image without a detectable face is embedded whole, and says so", async () => {
  const blank = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 128, g: 120, b: 110 } } }).png().toBuffer();
  const analysis = await pool!.analyze(new Uint8Array(blank));
  expect(analysis.faces.length).toBe(1);
  const [face] = analysis.faces;
  expect(face!.wholeImage).toBe(true);
  expect(face!.box).toEqual({ x: 0, y: 0, width: 64, height: 48 });
  // The default embedder's template (150x150 dlib chip) stretched over the 64x48 image.
  const template = (await DlibResNetEmbedder.load(ONNX_DIR)).template;
  face!.landmarks.forEach(([x, y], i) => {
    expect(x).toBeCloseTo((template[i]![0] * 64) / 150, 6);
    expect(y).toBeCloseTo((template[i]![1] * 48) / 150, 6);
  });
  expect(Math.hypot(...face!.embedding)).toBeCloseTo(1, 4);
});
