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

export interface OperatingPoint {
  threshold: number;
  /** null: a threshold set by hand (model.threshold, a custom embedder's), calibrated at no rate. */
  far: number | null;
}

/** About the best-accuracy point of the default embedder on lfw-devtrain (model/README.md), as the docs' example. */
const EXAMPLE_FAR = 0.01;

const listed = (points: FarCalibration) => points.map(([far]) => String(far)).join(", ");

/**
 * A decimal number as written, digits only: a number parameter read with `Number()` would take `0x1` as 1, ` 1e-1`
 * (`%201e-1`) as 0.1, and `Infinity`.
 */
const DECIMAL = "^(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][-+]?[0-9]+)?$";

/** The `far` query parameter (a decimal, read by `requestedPoint`), its description listing this service's calibrated rates. */
export function farQuery(points: FarCalibration) {
  const calibrated = points.length > 0 ? `one of ${listed(points)}` : "none here: the embedder has no calibration";
  return t.Optional(
    t.String({
      pattern: DECIMAL,
      description: `pairwise false accept rate (the share of different people called the same), a decimal between 0 and 1 exclusive, whose calibrated threshold decides: ${calibrated}; absent: the service's threshold`,
      examples: [String(EXAMPLE_FAR)],
    }),
  );
}

/** The operating point a request asked for, or undefined for the service's; a rate not calibrated is refused with the calibrated ones. */
export function requestedPoint(points: FarCalibration, farText: string | undefined): OperatingPoint | undefined {
  if (farText === undefined) return undefined;
  const far = Number(farText);
  if (!(far > 0 && far < 1)) throw new HttpError(400, "invalid_parameter", `invalid query parameter 'far': ${farText} is not between 0 and 1 exclusive`);
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
