/**
 * The open-set threshold: the similarity at or above which a face is named as its nearest enrolled subject.
 *
 * A stranger is compared with every enrolled subject, so with a threshold whose pairwise false accept rate is p, about
 * 1 - (1 - p)^N strangers are wrongly named in a gallery of N subjects: the false-alarm rate grows almost linearly with
 * the gallery. A target false-alarm rate is held by asking for p = 1 - (1 - target)^(1/N) of the embedder's calibration.
 */

export interface OpenSetThreshold {
  /** The threshold for a gallery of this many subjects. */
  at(subjects: number): number;
  /** The pairwise false accept rate that threshold was calibrated for; absent: a threshold set by hand. */
  farAt?(subjects: number): number;
}

/** The pairwise false accept rate whose calibrated threshold an embedder answers with by default. */
export const DEFAULT_FAR = 1e-3;

/**
 * Pairwise false accept rate -> the similarity threshold that lets that share of different-person pairs through,
 * measured once per embedder; sorted by falling rate (so rising threshold).
 */
export type FarCalibration = readonly (readonly [far: number, threshold: number])[];

export function fixedThreshold(threshold: number): OpenSetThreshold {
  return { at: () => threshold };
}

/**
 * The threshold measured at exactly this rate, or undefined when the calibration has no such point: an operating point
 * asked for by its rate is one that was measured, never an interpolation.
 */
export function calibratedThreshold(calibration: FarCalibration, far: number): number | undefined {
  return calibration.find(([rate]) => rate === far)?.[1];
}

/** One point of the calibration, whatever the gallery's size. */
export function calibratedPoint(calibration: FarCalibration, far: number): OpenSetThreshold {
  const threshold = calibratedThreshold(calibration, far);
  if (threshold === undefined) throw new Error(`the calibration has no point at a false accept rate of ${far}`);
  return { at: () => threshold, farAt: () => far };
}

/** The threshold that keeps the share of strangers named as someone at about `falseAlarmRate`, whatever the gallery's size. */
export function falseAlarmThreshold(calibration: FarCalibration, falseAlarmRate: number): OpenSetThreshold {
  if (calibration.length === 0) throw new Error("a false-alarm target needs a calibration");
  if (!(falseAlarmRate > 0 && falseAlarmRate < 1)) throw new Error(`a false-alarm rate is between 0 and 1, got ${falseAlarmRate}`);
  const first = calibration[0]![0];
  const last = calibration[calibration.length - 1]![0];
  // The rate the threshold holds: thresholdAtFar keeps the end thresholds beyond the calibration's ends.
  const far = (subjects: number) => Math.min(first, Math.max(last, pairwiseFar(falseAlarmRate, subjects)));
  return { at: (subjects) => thresholdAtFar(calibration, far(subjects)), farAt: (subjects) => Number(far(subjects).toPrecision(3)) };
}

/** The pairwise false accept rate at which `subjects` independent comparisons name a stranger with probability `falseAlarmRate`. */
export function pairwiseFar(falseAlarmRate: number, subjects: number): number {
  return 1 - (1 - falseAlarmRate) ** (1 / Math.max(1, subjects));
}

/**
 * The calibrated threshold at a pairwise rate, interpolated linearly in log(rate); rates beyond the calibration's ends
 * get its end thresholds (the measurement says nothing finer).
 */
export function thresholdAtFar(calibration: FarCalibration, far: number): number {
  const first = calibration[0]!;
  const last = calibration[calibration.length - 1]!;
  if (far >= first[0]) return first[1];
  if (far <= last[0]) return last[1];
  const upper = calibration.findIndex(([rate]) => rate <= far);
  const [farA, thresholdA] = calibration[upper - 1]!;
  const [farB, thresholdB] = calibration[upper]!;
  const t = Math.log(far / farA) / Math.log(farB / farA);
  return thresholdA + t * (thresholdB - thresholdA);
}
