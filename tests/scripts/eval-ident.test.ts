import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { detectionAndIdentificationAtFar, falseAlarmRate, rankAccuracy, type IdentificationProbe } from "../../model/threshold.ts";
import { differentPersonSimilarities, identificationSplit, readLfwPeople, type LfwPerson } from "../../scripts/lfw.ts";
import { HAVE_LFW, LFW_DIR } from "../model/support/lfw.ts";
import { runScript } from "./support.ts";

// Runs the pipeline on real photos: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(120_000);

const folders: string[] = [];
afterAll(() => folders.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
const temporary = () => {
  const dir = mkdtempSync(join(tmpdir(), "eval-ident-"));
  folders.push(dir);
  return dir;
};

const person = (name: string, photos: number): LfwPerson => ({ name, photos: Array.from({ length: photos }, (_, i) => `${name}/${i + 1}.jpg`) });

describe("the identification split", () => {
  const people = [person("Ann", 4), person("Bob", 1), person("Cy", 2), person("Dee", 3), person("Eve", 1)];

  test("one photo each: everyone with two or more is enrolled from the first, probed with the rest; one-photo people are strangers", () => {
    const split = identificationSplit(people, 1);
    expect(split.gallery).toEqual([person("Ann", 1), person("Cy", 1), person("Dee", 1)]);
    expect(split.probes.map((p) => p.photo)).toEqual(["Ann/2.jpg", "Ann/3.jpg", "Ann/4.jpg", "Cy/2.jpg", "Dee/2.jpg", "Dee/3.jpg"]);
    expect(split.probes[3]!.subject).toBe("Cy");
    expect(split.strangers).toEqual(["Bob/1.jpg", "Eve/1.jpg"]);
  });

  test("three photos each: only people with more than three are enrolled; --probes caps the probes per person", () => {
    const split = identificationSplit(people, 3, 1);
    expect(split.gallery.map((g) => [g.name, g.photos.length])).toEqual([["Ann", 3]]);
    expect(split.probes).toEqual([{ subject: "Ann", photo: "Ann/4.jpg" }]);
    expect(split.strangers).toEqual(["Bob/1.jpg", "Eve/1.jpg"]);
    expect(identificationSplit(people, 2, 0).probes).toEqual([]);
    expect(() => identificationSplit(people, 0)).toThrow(/at least one photo/);
  });

  test("readLfwPeople: person folders by name, .jpg photos in number order, empty folders and stray files skipped", () => {
    const dir = temporary();
    for (const [name, files] of [["Zed", ["Zed_0002.jpg", "Zed_0001.jpg", "notes.txt"]], ["Amy", ["Amy_0001.jpg"]], ["Empty", []]] as const) {
      mkdirSync(join(dir, name));
      for (const file of files) writeFileSync(join(dir, name, file), "");
    }
    writeFileSync(join(dir, "README"), "");
    expect(readLfwPeople(dir)).toEqual([
      { name: "Amy", photos: [join(dir, "Amy", "Amy_0001.jpg")] },
      { name: "Zed", photos: [join(dir, "Zed", "Zed_0001.jpg"), join(dir, "Zed", "Zed_0002.jpg")] },
    ]);
  });
});

test("differentPersonSimilarities: every pair of images of two different people (an image's folder), none of one person", () => {
  const embeddings = new Map([
    ["/d/Ann/Ann_0001.jpg", new Float32Array([1, 0])],
    ["/d/Ann/Ann_0002.jpg", new Float32Array([0.6, 0.8])],
    ["/d/Bob/Bob_0001.jpg", new Float32Array([0, 1])],
    ["/d/Cy/Cy_0001.jpg", new Float32Array([-1, 0])],
  ]);
  // Ann1-Bob, Ann1-Cy, Ann2-Bob, Ann2-Cy, Bob-Cy; not Ann1-Ann2.
  expect(Array.from(differentPersonSimilarities(embeddings), (x) => Math.round(x * 100) / 100)).toEqual([0, -1, 0.8, -0.6, 0]);
  expect(differentPersonSimilarities(new Map([["/d/Ann/1.jpg", new Float32Array([1])]])).length).toBe(0);
});

describe("identification metrics", () => {
  const ranked = (subject: string | undefined, ...candidates: [string, number][]): IdentificationProbe => ({
    subject,
    candidates: candidates.map(([name, similarity]) => ({ subject: name, similarity })),
  });
  const probes = [
    ranked("a", ["a", 0.97], ["b", 0.9]),
    ranked("b", ["c", 0.95], ["b", 0.94]),
    ranked("c", ["c", 0.93], ["a", 0.8]),
    ranked("d", ["a", 0.91], ["b", 0.9], ["c", 0.89]),
    ranked(undefined, ["a", 0.96]),
    ranked(undefined, ["b", 0.92]),
    ranked(undefined, ["c", 0.85]),
    ranked(undefined, ["a", 0.7]),
  ];

  test("rank-k: the share of enrolled people's probes with their subject among the first k; strangers do not count", () => {
    expect(rankAccuracy(probes, 1)).toBe(0.5);
    expect(rankAccuracy(probes, 2)).toBe(0.75);
    expect(rankAccuracy(probes, 5)).toBe(0.75);
    expect(() => rankAccuracy(probes.slice(4), 1)).toThrow(/enrolled people/);
  });

  test("DIR at a false-alarm rate: the threshold lets at most that share of strangers above it; a hit is right and above it", () => {
    // 4 strangers, rate 0.25: one may pass, so the threshold is the second-best stranger (0.92), and only 0.97 and 0.93 clear it.
    expect(detectionAndIdentificationAtFar(probes, 0.25)).toEqual({ dir: 0.5, threshold: 0.92 });
    // Rate 0: none may pass; only the 0.97 probe is above the best stranger's 0.96.
    expect(detectionAndIdentificationAtFar(probes, 0)).toEqual({ dir: 0.25, threshold: 0.96 });
    expect(() => detectionAndIdentificationAtFar(probes.slice(0, 4), 0.1)).toThrow(/strangers/);
  });

  test("the false-alarm rate counts strangers at or above a threshold", () => {
    expect(falseAlarmRate(probes, 0.92)).toBe(0.5);
    expect(falseAlarmRate(probes, 0.97)).toBe(0);
    expect(falseAlarmRate(probes, 0)).toBe(1);
  });
});

describe.skipIf(!HAVE_LFW)("eval-ident on a few LFW folders", () => {
  test("prints its figures and ends with the JSON line the issue names", async () => {
    const dir = temporary();
    // Three people with 4 photos, two with 2, and three strangers (one photo each): 5 enrolled, 10 probes, 21 images.
    for (const name of ["Aaron_Peirsol", "Abdullah", "Adam_Sandler", "Aaron_Sorkin", "Adam_Scott", "AJ_Cook", "Abdoulaye_Wade", "Abdul_Rahman"]) {
      symlinkSync(join(LFW_DIR, "images", name), join(dir, name));
    }
    const people = readLfwPeople(dir);
    const run = await runScript("eval-ident.ts", ["--images", dir, "--gallery-photos", "1", "--workers", "1"]);
    expect(run.exitCode).toBe(0);
    const split = identificationSplit(people, 1);
    expect(Object.keys(run.summary)).toEqual(["people", "probes", "rank1", "rank5", "dir_at_far_1e-2", "dir_at_far_1e-3", "threshold_at_far_1e-3", "calibration", "images_per_s"]);
    // The calibration: rates falling, thresholds rising, over every pair of images of two different people.
    const calibration = run.summary.calibration as [number, number][];
    expect(calibration.map(([far]) => far)).toEqual([1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]);
    const thresholds = calibration.map(([, threshold]) => threshold);
    expect(thresholds).toEqual([...thresholds].sort((a, b) => a - b));
    expect(run.stdout).toMatch(/calibration over \d+ different-person pairs: 0\.1 -> /);
    expect(run.summary.people).toBe(split.gallery.length);
    expect(run.summary.probes).toBe(split.probes.length);
    expect(run.summary.rank1 as number).toBeGreaterThanOrEqual(0.8);
    expect(run.summary.rank5).toBe(1);
    expect(run.summary.images_per_s as number).toBeGreaterThan(0);
    expect(run.stdout).toMatch(/closed set: rank-1/);
    expect(run.stdout).toMatch(/false alarms of \d+ strangers by gallery size/);
    expect(run.stderr).toMatch(/images, [\d.]+\/s/);
  });
});
