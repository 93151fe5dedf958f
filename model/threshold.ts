/** Verification thresholds on scored pairs (the accuracy-maximising threshold, the 10-fold protocol, TAR at a given FAR, an embedder's calibration) and identification metrics (rank-k, DIR at a false-alarm rate). */
import type { FarCalibration } from "./open-set.ts";

export interface ScoredPair {
  /** Similarity: higher means more alike. */
  score: number;
  same: boolean;
}

/** A pair is called "same" when its score is at or above the threshold. */
export function accuracyAt(pairs: readonly ScoredPair[], threshold: number): number {
  if (pairs.length === 0) return 0;
  let correct = 0;
  for (const pair of pairs) if (pair.score >= threshold === pair.same) correct++;
  return correct / pairs.length;
}

/** The threshold with the best accuracy on these pairs, midway between two neighbouring scores. */
export function bestThreshold(pairs: readonly ScoredPair[]): { threshold: number; accuracy: number } {
  if (pairs.length === 0) throw new Error("no pairs to choose a threshold on");
  const sorted = [...pairs].sort((p, q) => p.score - q.score);
  // Threshold below every score: all called same, so the different pairs are the errors.
  let correct = sorted.filter((p) => p.same).length;
  let bestCorrect = correct;
  let best = sorted[0]!.score - 1e-6;
  for (let i = 0; i < sorted.length; i++) {
    // Raising the threshold past sorted[i] turns it into a "different" call.
    correct += sorted[i]!.same ? -1 : 1;
    const next = sorted[i + 1];
    if (next !== undefined && next.score === sorted[i]!.score) continue;
    if (correct > bestCorrect) {
      bestCorrect = correct;
      best = next === undefined ? sorted[i]!.score + 1e-6 : (sorted[i]!.score + next.score) / 2;
    }
  }
  return { threshold: best, accuracy: bestCorrect / pairs.length };
}

export interface FoldResult {
  threshold: number;
  accuracy: number;
}

export interface CrossValidation {
  folds: FoldResult[];
  /** Mean accuracy over the folds. */
  accuracy: number;
  /** Population standard deviation of the fold accuracies. */
  std: number;
  /** Mean of the fold thresholds. */
  threshold: number;
}

/** The standard LFW protocol: each fold is tested with the threshold chosen on all the others. */
export function crossValidate(folds: readonly (readonly ScoredPair[])[]): CrossValidation {
  if (folds.length < 2) throw new Error("cross-validation needs at least 2 folds");
  const results = folds.map((test, i) => {
    const train = folds.flatMap((fold, j) => (j === i ? [] : fold));
    const { threshold } = bestThreshold(train);
    return { threshold, accuracy: accuracyAt(test, threshold) };
  });
  const accuracy = mean(results.map((r) => r.accuracy));
  const std = Math.sqrt(mean(results.map((r) => (r.accuracy - accuracy) ** 2)));
  return { folds: results, accuracy, std, threshold: mean(results.map((r) => r.threshold)) };
}

/**
 * Splits one list into k folds that keep the same/different balance: the same pairs and the different pairs are each
 * cut into k contiguous runs (LFW files list people in order, so no person's pairs spread over many folds).
 */
export function splitIntoFolds<T extends { same: boolean }>(pairs: readonly T[], k = 10): T[][] {
  const folds: T[][] = Array.from({ length: k }, () => []);
  for (const same of [true, false]) {
    const group = pairs.filter((p) => p.same === same);
    group.forEach((pair, i) => folds[Math.floor((i * k) / group.length)]!.push(pair));
  }
  return folds;
}

/**
 * True accept rate at a false accept rate: the threshold is the lowest that lets at most far * (different pairs)
 * different pairs through (accepting only scores strictly above it).
 */
export function tarAtFar(pairs: readonly ScoredPair[], far: number): { tar: number; threshold: number } {
  const impostors = pairs.filter((p) => !p.same).map((p) => p.score).sort((x, y) => y - x);
  const genuine = pairs.filter((p) => p.same).map((p) => p.score);
  if (impostors.length === 0 || genuine.length === 0) throw new Error("TAR@FAR needs both same and different pairs");
  const threshold = thresholdLettingThrough(impostors, far);
  return { tar: genuine.filter((s) => s > threshold).length / genuine.length, threshold };
}

/** The lowest threshold that lets at most far * (scores) of these scores, sorted highest first, through (accepting only scores strictly above it). */
function thresholdLettingThrough(highestFirst: ArrayLike<number>, far: number): number {
  return highestFirst[Math.min(Math.floor(far * highestFirst.length), highestFirst.length - 1)]!;
}

/**
 * An embedder's calibration (open-set.ts): the threshold at each rate over its different-person similarities, chosen
 * as tarAtFar chooses it, rates falling.
 */
export function farCalibration(impostors: ArrayLike<number>, rates: readonly number[]): FarCalibration {
  if (impostors.length === 0) throw new Error("a calibration needs different-person similarities");
  const highestFirst = Float64Array.from(impostors).sort().reverse();
  return [...rates].sort((a, b) => b - a).map((far) => [far, thresholdLettingThrough(highestFirst, far)] as const);
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** One identification probe: who it shows (undefined: a stranger, enrolled nowhere) and the gallery's best subjects, best first. */
export interface IdentificationProbe {
  subject?: string;
  candidates: readonly { subject: string; similarity: number }[];
}

/** Closed-set rank-k accuracy: the share of probes of enrolled people whose subject is among their k best candidates. */
export function rankAccuracy(probes: readonly IdentificationProbe[], k: number): number {
  const known = probes.filter((probe) => probe.subject !== undefined);
  if (known.length === 0) throw new Error("rank accuracy needs probes of enrolled people");
  return known.filter((probe) => probe.candidates.slice(0, k).some((candidate) => candidate.subject === probe.subject)).length / known.length;
}

/**
 * Open-set detection and identification rate at a false-alarm rate: the threshold is the lowest that lets at most
 * far * (strangers) strangers' best similarities through (accepting only similarities strictly above it); a probe of an
 * enrolled person counts when its best candidate is its subject and clears the threshold.
 */
export function detectionAndIdentificationAtFar(probes: readonly IdentificationProbe[], far: number): { dir: number; threshold: number } {
  const strangers = probes.filter((probe) => probe.subject === undefined).map(bestSimilarity).sort((x, y) => y - x);
  const known = probes.filter((probe) => probe.subject !== undefined);
  if (strangers.length === 0 || known.length === 0) throw new Error("DIR@FAR needs probes of strangers and of enrolled people");
  const threshold = thresholdLettingThrough(strangers, far);
  const identified = known.filter((probe) => probe.candidates[0]?.subject === probe.subject && bestSimilarity(probe) > threshold);
  return { dir: identified.length / known.length, threshold };
}

/** The share of strangers whose best similarity is at or above the threshold (the open-set false-alarm rate). */
export function falseAlarmRate(probes: readonly IdentificationProbe[], threshold: number): number {
  const strangers = probes.filter((probe) => probe.subject === undefined);
  if (strangers.length === 0) throw new Error("a false-alarm rate needs probes of strangers");
  return strangers.filter((probe) => bestSimilarity(probe) >= threshold).length / strangers.length;
}

const bestSimilarity = (probe: IdentificationProbe) => probe.candidates[0]?.similarity ?? -Infinity;
