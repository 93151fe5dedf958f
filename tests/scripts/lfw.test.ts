import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { centralFace, readLfwPairs } from "../../scripts/lfw.ts";
import type { EmbeddedFace } from "../../model/types.ts";

const dir = mkdtempSync(join(tmpdir(), "lfw-pairs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

test("a single-split file: N same pairs then N different pairs, one list", () => {
  const { folds, predefinedFolds } = readLfwPairs(file("view1.txt", "2\nAnn\t1\t2\nBob 3 12\nAnn\t1\tBob\t3\nCy 2 Dee 1\n"), "/img");
  expect(predefinedFolds).toBe(false);
  expect(folds.length).toBe(1);
  expect(folds[0]![1]).toEqual({ first: "/img/Bob/Bob_0003.jpg", second: "/img/Bob/Bob_0012.jpg", same: true });
  expect(folds[0]![3]).toEqual({ first: "/img/Cy/Cy_0002.jpg", second: "/img/Dee/Dee_0001.jpg", same: false });
});

test("a 10-fold file keeps its folds, each same then different", () => {
  const lines = ["3 1"];
  for (let f = 0; f < 3; f++) lines.push(`P${f} 1 2`, `P${f} 1 Q${f} 1`);
  const { folds, predefinedFolds } = readLfwPairs(file("view2.txt", `${lines.join("\r\n")}\r\n`), "/img");
  expect(predefinedFolds).toBe(true);
  expect(folds.map((fold) => fold.map((p) => p.same))).toEqual([[true, false], [true, false], [true, false]]);
  expect(folds[2]![0]!.first).toBe("/img/P2/P2_0001.jpg");
});

test("malformed files are refused with the reason", () => {
  expect(() => readLfwPairs(file("short.txt", "2\nAnn 1 2\nAnn 1 Bob 1\n"), "/img")).toThrow(/expected 4 pair lines/);
  expect(() => readLfwPairs(file("order.txt", "1\nAnn 1 Bob 1\nAnn 1 2\n"), "/img")).toThrow(/same-person pairs/);
  expect(() => readLfwPairs(file("fields.txt", "1\nAnn 1\nAnn 1 Bob 1\n"), "/img")).toThrow(/:2: expected/);
  expect(() => readLfwPairs(file("header.txt", "x\n"), "/img")).toThrow(/first line/);
});

test("centralFace picks the face nearest the image centre", () => {
  const face = (x: number, y: number, side: number): EmbeddedFace => ({
    box: { x, y, width: side, height: side },
    score: 1,
    landmarks: [],
    quality: { sharpness: 1, brightness: 0.5, size: side },
    wholeImage: false,
    embedding: new Float32Array(1),
  });
  const big = face(0, 0, 120);
  const central = face(100, 100, 50);
  expect(centralFace([big, central], 250, 250)).toBe(central);
  expect(centralFace([], 250, 250)).toBeUndefined();
});
