import { describe, expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { ModelConfigSchema, type ModelConfig } from "../../model/config.ts";
import { calibratedPoint, calibratedThreshold, DEFAULT_FAR, falseAlarmThreshold, fixedThreshold, pairwiseFar, thresholdAtFar, type FarCalibration } from "../../model/open-set.ts";
import { EMBEDDERS, operatingPointsFor, thresholdFor } from "../../model/registry.ts";

const CALIBRATION: FarCalibration = [
  [1e-2, 0.9],
  [1e-3, 0.93],
  [1e-4, 0.95],
];

test("pairwiseFar: one subject asks for the target itself; N subjects for about target / N", () => {
  expect(pairwiseFar(0.01, 1)).toBeCloseTo(0.01, 12);
  expect(pairwiseFar(0.01, 0)).toBeCloseTo(0.01, 12);
  expect(pairwiseFar(0.01, 100)).toBeCloseTo(1.005e-4, 6);
  // Holding the rate: N comparisons at that pairwise rate give the target back.
  expect(1 - (1 - pairwiseFar(1e-3, 500)) ** 500).toBeCloseTo(1e-3, 12);
});

test("thresholdAtFar: the calibration's points, log-linear between them, its ends beyond them", () => {
  expect(thresholdAtFar(CALIBRATION, 1e-3)).toBeCloseTo(0.93, 12);
  expect(thresholdAtFar(CALIBRATION, Math.sqrt(1e-3 * 1e-4))).toBeCloseTo(0.94, 12);
  expect(thresholdAtFar(CALIBRATION, 0.5)).toBe(0.9);
  expect(thresholdAtFar(CALIBRATION, 1e-9)).toBe(0.95);
});

describe("calibratedThreshold: a measured point by its exact rate, nothing between or beyond", () => {
  const cases: [string, FarCalibration, number, number | undefined][] = [
    ["a point", CALIBRATION, 1e-3, 0.93],
    ["the first", CALIBRATION, 1e-2, 0.9],
    ["the last", CALIBRATION, 1e-4, 0.95],
    ["the same rate written otherwise", CALIBRATION, Number("0.0010"), 0.93],
    ["between two points", CALIBRATION, 5e-3, undefined],
    ["above the first", CALIBRATION, 0.1, undefined],
    ["below the last", CALIBRATION, 1e-5, undefined],
    ["a hair off a point", CALIBRATION, 1e-3 + 1e-15, undefined],
    ["no calibration", [], 1e-3, undefined],
    ["not a rate", CALIBRATION, Number.NaN, undefined],
  ];
  for (const [what, calibration, far, expected] of cases) test(what, () => expect(calibratedThreshold(calibration, far)).toBe(expected));
});

test("a calibrated point is fixed and knows its rate; one not in the calibration cannot be made", () => {
  const point = calibratedPoint(CALIBRATION, 1e-4);
  expect([point.at(1), point.at(1e6), point.farAt?.(1), point.farAt?.(1e6)]).toEqual([0.95, 0.95, 1e-4, 1e-4]);
  expect(() => calibratedPoint(CALIBRATION, 2e-3)).toThrow(/no point/);
  expect(fixedThreshold(0.5).farAt).toBeUndefined();
});

test("a false-alarm target's threshold states the pairwise rate it holds, kept within the calibration's ends", () => {
  const target = falseAlarmThreshold(CALIBRATION, 1e-2);
  expect(target.farAt?.(1)).toBe(0.01);
  expect(target.farAt?.(10)).toBe(0.001);
  expect(target.farAt?.(7)).toBe(Number(pairwiseFar(1e-2, 7).toPrecision(3)));
  // Past the calibration the threshold stays at its end, and so does the rate it claims.
  expect(target.farAt?.(1e6)).toBe(1e-4);
  expect(target.at(1e6)).toBe(0.95);
  expect(falseAlarmThreshold(CALIBRATION, 0.5).farAt?.(1)).toBe(1e-2);
});

test("a false-alarm target raises the threshold as the gallery grows; a fixed one does not", () => {
  const target = falseAlarmThreshold(CALIBRATION, 1e-2);
  expect(target.at(1)).toBeCloseTo(0.9, 6);
  expect(target.at(10)).toBeCloseTo(0.93, 3);
  expect(target.at(100)).toBeCloseTo(0.95, 3);
  expect(target.at(100)).toBeGreaterThan(target.at(50));
  expect(fixedThreshold(0.93).at(1)).toBe(fixedThreshold(0.93).at(1e6));
  expect(() => falseAlarmThreshold(CALIBRATION, 0)).toThrow(/between 0 and 1/);
  expect(() => falseAlarmThreshold([], 0.01)).toThrow(/calibration/);
});

test("thresholdFor: model.falseAlarmRate follows dlib-resnet's calibration; model.threshold still wins", () => {
  const config = Value.Default(ModelConfigSchema, {}) as ModelConfig;
  const target = thresholdFor({ ...config, embedder: "dlib-resnet", falseAlarmRate: 1e-2 });
  expect(target.at(1)).toBeCloseTo(0.9121, 4);
  expect(target.at(10)).toBeCloseTo(0.9305, 2);
  expect(target.at(1000)).toBeGreaterThan(0.95);
  expect(thresholdFor({ ...config, falseAlarmRate: 1e-2, threshold: 0.8 }).at(1000)).toBe(0.8);
  expect(() => thresholdFor({ ...config, embedder: "custom", falseAlarmRate: 1e-2 })).toThrow(/no calibration/);
});

test("thresholdFor: by default the embedder's calibrated point at DEFAULT_FAR, which states its rate; set by hand, none", () => {
  const config = Value.Default(ModelConfigSchema, {}) as ModelConfig;
  const byDefault = thresholdFor(config);
  expect([byDefault.at(1), byDefault.at(1000), byDefault.farAt?.(1000)]).toEqual([0.9307, 0.9307, 1e-3]); // the default embedder, dlib-resnet-int8
  expect(thresholdFor({ ...config, threshold: 0.8 }).farAt).toBeUndefined();
  expect(thresholdFor({ ...config, falseAlarmRate: 1e-2 }).farAt?.(1)).toBe(1e-2);
});

test("operatingPointsFor: the embedder's calibration, none for a custom or unknown one; every calibration holds DEFAULT_FAR, rates falling", () => {
  const config = Value.Default(ModelConfigSchema, {}) as ModelConfig;
  expect(operatingPointsFor(config).map(([far]) => far)).toEqual([1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]);
  expect(operatingPointsFor({ ...config, embedder: "custom" })).toEqual([]);
  expect(operatingPointsFor({ ...config, embedder: "nobody" })).toEqual([]);
  for (const [name, entry] of Object.entries(EMBEDDERS)) {
    if (!entry.calibration) continue;
    expect(calibratedThreshold(entry.calibration, DEFAULT_FAR), name).toBeDefined();
    const rates = entry.calibration.map(([far]) => far);
    expect(rates, name).toEqual([...rates].sort((a, b) => b - a));
  }
});
