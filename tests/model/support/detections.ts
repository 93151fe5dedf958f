/** Expectations shared by the detector tests on deep-funneled LFW photos (250x250, one face in the middle). */
import { expect } from "bun:test";
import type { DetectedFace } from "../../../model/types.ts";

/** Exactly one face, centred, of a plausible size, with its five points inside its box. */
export function expectOneCentredFace(faces: DetectedFace[]): void {
  const [face, ...others] = faces;
  expect(others).toEqual([]);
  const { x, y, width, height } = face!.box;
  expect(Math.abs(x + width / 2 - 125)).toBeLessThan(25);
  expect(Math.abs(y + height / 2 - 125)).toBeLessThan(25);
  expect(width).toBeGreaterThan(70);
  expect(width).toBeLessThan(200);
  expect(face!.landmarks).toHaveLength(5);
  for (const [px, py] of face!.landmarks) {
    expect(px).toBeGreaterThan(x);
    expect(px).toBeLessThan(x + width);
    expect(py).toBeGreaterThan(y);
    expect(py).toBeLessThan(y + height);
  }
}
