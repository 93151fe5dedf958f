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
}

/**
 * Pairwise false accept rate -> the similarity threshold that lets that share of different-person pairs through,
 * measured once per embedder; sorted by falling rate (so rising threshold).
 */
export type FarCalibration = readonly (readonly [far: number, threshold: number])[];

export function fixedThreshold(threshold: number): OpenSetThreshold {
  return { at: () => threshold };
}

/** The threshold that keeps the share of strangers named as someone at about `falseAlarmRate`, whatever the gallery's size. */
export function falseAlarmThreshold(calibration: FarCalibration, falseAlarmRate: number): OpenSetThreshold {
  if (calibration.length === 0) throw new Error("a false-alarm target needs a calibration");
  if (!(falseAlarmRate > 0 && falseAlarmRate < 1)) throw new Error(`a false-alarm rate is between 0 and 1, got ${falseAlarmRate}`);
  return { at: (subjects) => thresholdAtFar(calibration, pairwiseFar(falseAlarmRate, subjects)) };
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
