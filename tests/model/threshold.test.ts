import { describe, expect, test } from "bun:test";
import { accuracyAt, bestThreshold, crossValidate, farCalibration, splitIntoFolds, tarAtFar, type ScoredPair } from "../../model/threshold.ts";

const same = (score: number): ScoredPair => ({ score, same: true });
const different = (score: number): ScoredPair => ({ score, same: false });

test("accuracyAt counts scores at or above the threshold as same", () => {
  const pairs = [same(0.9), same(0.5), different(0.5), different(0.1)];
  expect(accuracyAt(pairs, 0.5)).toBe(0.75);
  expect(accuracyAt(pairs, 0.6)).toBe(0.75);
  expect(accuracyAt(pairs, 0.3)).toBe(0.75);
  expect(accuracyAt(pairs, 0.95)).toBe(0.5);
});

describe("bestThreshold", () => {
  test("separable pairs: a threshold between the classes, accuracy 1", () => {
    const { threshold, accuracy } = bestThreshold([different(0.1), same(0.8), different(0.3), same(0.6)]);
    expect(accuracy).toBe(1);
    expect(threshold).toBeCloseTo(0.45, 9);
  });

  test("overlapping pairs: the best of every cut", () => {
    const pairs = [different(0.1), same(0.2), different(0.3), different(0.4), same(0.5), same(0.6), different(0.7), same(0.8)];
    const { threshold, accuracy } = bestThreshold(pairs);
    const exhaustive = Math.max(...[0, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.9].map((t) => accuracyAt(pairs, t)));
    expect(accuracy).toBe(exhaustive);
    expect(accuracyAt(pairs, threshold)).toBe(accuracy);
  });

  test("tied scores are never split", () => {
    const { accuracy, threshold } = bestThreshold([same(0.5), different(0.5), same(0.5)]);
    expect(accuracy).toBeCloseTo(2 / 3, 9);
    expect(threshold).toBeLessThan(0.5);
  });

  test("all different: a threshold above every score", () => {
    const { threshold, accuracy } = bestThreshold([different(0.2), different(0.4)]);
    expect(accuracy).toBe(1);
    expect(threshold).toBeGreaterThan(0.4);
  });
});

test("splitIntoFolds keeps the balance and every pair", () => {
  const pairs = [...Array.from({ length: 25 }, (_, i) => same(i)), ...Array.from({ length: 25 }, (_, i) => different(i))];
  const folds = splitIntoFolds(pairs, 10);
  expect(folds.length).toBe(10);
  expect(folds.flat().length).toBe(50);
  for (const fold of folds) {
    const sames = fold.filter((p) => p.same).length;
    expect(sames).toBeGreaterThanOrEqual(2);
    expect(sames).toBeLessThanOrEqual(3);
    expect(fold.length - sames).toBe(sames);
  }
  expect(folds[0]!.map((p) => p.score)).toEqual([0, 1, 2, 0, 1, 2]);
});

test("crossValidate tests each fold with the threshold of the others", () => {
  // Folds 0-8 are separable at 0.5; fold 9 has a same pair at 0.45 that the others' threshold rejects.
  const folds = Array.from({ length: 10 }, (_, i) => [same(i === 9 ? 0.45 : 0.9), different(0.1)]);
  const result = crossValidate(folds);
  expect(result.folds.length).toBe(10);
  expect(result.folds[9]!.accuracy).toBe(0.5);
  expect(result.folds[0]!.accuracy).toBe(1);
  expect(result.accuracy).toBeCloseTo(0.95, 9);
  expect(result.std).toBeCloseTo(0.15, 9);
});

test("tarAtFar lets through at most the allowed share of different pairs", () => {
  const impostors = Array.from({ length: 1000 }, (_, i) => different(i / 1000));
  const genuine = [same(0.9985), same(0.9995), same(0.5), same(1.5)];
  const { tar, threshold } = tarAtFar([...impostors, ...genuine], 1e-3);
  expect(threshold).toBe(0.998);
  expect(tar).toBe(0.75);
  expect(tarAtFar([...impostors, ...genuine], 0).tar).toBe(0.5);
});

test("farCalibration: each rate's threshold as tarAtFar chooses it, rates falling; below one pair's share, the highest score", () => {
  const scores = Array.from({ length: 1000 }, (_, i) => ((i * 7919) % 1000) / 1000); // 0 .. 0.999, shuffled
  const calibration = farCalibration(scores, [1e-3, 1e-1, 1e-6, 1e-2, 1]);
  expect(calibration).toEqual([
    [1, 0],
    [1e-1, 0.899],
    [1e-2, 0.989],
    [1e-3, 0.998],
    [1e-6, 0.999],
  ]);
  const pairs = [...scores.map(different), same(1)];
  for (const [far, threshold] of calibration) expect(tarAtFar(pairs, far).threshold).toBe(threshold);
  expect(() => farCalibration([], [1e-3])).toThrow(/different-person/);
});
