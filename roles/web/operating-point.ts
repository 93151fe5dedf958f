/**
 * The per-request operating point: `far`, a pairwise false accept rate the embedder was calibrated at, picks the
 * similarity threshold a recognition or a verification is answered with. The web role applies the threshold (the match
 * of recognize, `same` of verify), so the job message carries nothing more; without `far` the app's threshold in force
 * is answered, with the rate it was calibrated for.
 *
 * A rate that was not calibrated is refused, not rounded to the nearest calibrated one: rounding up would give the
 * caller more false accepts than it asked for, rounding down fewer true ones, and neither would show unless the
 * caller compared the `far` answered with the one it sent.
 */
import { t } from "elysia";
import { calibratedThreshold, type FarCalibration } from "../../model/index.ts";
import { HttpError } from "./http-error.ts";
import { queryDecimal } from "./query-numbers.ts";

export interface OperatingPoint {
  threshold: number;
  /** null: a threshold set by hand (model.threshold, a custom embedder's), calibrated at no rate. */
  far: number | null;
}

/** About the best-accuracy point of the default embedder on lfw-devtrain (model/README.md), as the docs' example. */
const EXAMPLE_FAR = 0.01;

const listed = (points: FarCalibration) => points.map(([far]) => String(far)).join(", ");

/** The `far` query parameter (read strictly by `queryDecimal`), its description listing this service's calibrated rates. */
export function farQuery(points: FarCalibration) {
  const calibrated = points.length > 0 ? `one of ${listed(points)}` : "none here: the embedder has no calibration";
  return queryDecimal("far", {
    minimum: 0,
    maximum: 1,
    exclusive: true,
    description: `pairwise false accept rate (the share of different people called the same), whose calibrated threshold decides: ${calibrated}; absent: the service's threshold`,
    examples: [String(EXAMPLE_FAR)],
  });
}

/** The operating point a request asked for (`far`, already read and bounded), or undefined for the service's; a rate not calibrated is refused with the calibrated ones. */
export function requestedPoint(points: FarCalibration, far: number | undefined): OperatingPoint | undefined {
  if (far === undefined) return undefined;
  const threshold = calibratedThreshold(points, far);
  if (threshold !== undefined) return { threshold, far };
  throw new HttpError(
    400,
    "uncalibrated_far",
    points.length > 0
      ? `far ${far} is not a calibrated operating point; calibrated: ${listed(points)}`
      : `far ${far} is not a calibrated operating point: this embedder has none, so its configured threshold is the only one`,
  );
}

/** What an answer states: the point asked for, else the threshold the app had in force. */
export function answeredPoint(requested: OperatingPoint | undefined, inForce: { threshold: number; far?: number }): OperatingPoint {
  return requested ?? { threshold: inForce.threshold, far: inForce.far ?? null };
}

export const FarAnswerSchema = t.Union([t.Number(), t.Null()], {
  description: "the pairwise false accept rate the threshold was calibrated for: the far asked for, else the service's default; null for a threshold set by hand",
});
