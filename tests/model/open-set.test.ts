import { expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { ModelConfigSchema, type ModelConfig } from "../../model/config.ts";
import { falseAlarmThreshold, fixedThreshold, pairwiseFar, thresholdAtFar, type FarCalibration } from "../../model/open-set.ts";
import { thresholdFor } from "../../model/registry.ts";

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
