/**
 * Learns the `keypoint-template` landmarker's data, model/landmarkers/keypoint-template.json, from lfw-devtrain (LFW's
 * development set, never a test split):
 *   bun run scripts/learn-keypoint-template.ts [--images DIR]
 * For the BlazeFace front face nearest the centre of every photo, with landmark68's five points as the reference: the
 * template is the mean position of BlazeFace's keypoints once the similarity that puts the reference on dlib's mean face
 * (`MEAN_FACE_FIVE_POINTS`, as the embedder's alignment does) is applied; the weights are the least-squares linear map,
 * in the frame that puts BlazeFace's keypoints on the template, from those keypoints and the box to the reference.
 * It first fits on half the people and prints the alignment error on the other half, in pixels of dlib's 150x150 chip.
 */
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { applySimilarity, estimateSimilarity, invertSimilarity } from "../model/align.ts";
import { decodeImage } from "../model/decode.ts";
import { BLAZEFACE_FRONT, BlazeFaceDetector } from "../model/detectors/blazeface.ts";
import { MEAN_FACE_FIVE_POINTS } from "../model/face-geometry.ts";
import { detectorKeypoints, KEYPOINT_TEMPLATE_PATH, keypointFeatures, predictFivePoints, type KeypointTemplate } from "../model/landmarkers/keypoint-template.ts";
import { Landmark68 } from "../model/landmarkers/landmark68.ts";
import { ONNX_DIR } from "../model/onnx-session.ts";
import type { Box, Point } from "../model/types.ts";

const { values: args } = parseArgs({
  options: { images: { type: "string", default: join(import.meta.dir, "..", "..", "shared", "datasets", "lfw-devtrain", "images") } },
});
const imagesDir = args.images!;
const people = readdirSync(imagesDir).sort();

interface Sample {
  person: number;
  /** The detector's five points and box, and landmark68's five points (the reference), in image pixels. */
  detected: readonly Point[];
  box: Box;
  reference: readonly Point[];
}

const detector = await BlazeFaceDetector.load(ONNX_DIR, { model: BLAZEFACE_FRONT });
const landmarker = await Landmark68.load(ONNX_DIR);
const samples: Sample[] = [];
let photos = 0;
for (const [person, name] of people.entries()) {
  for (const file of readdirSync(join(imagesDir, name)).sort()) {
    photos++;
    const image = await decodeImage(await Bun.file(join(imagesDir, name, file)).bytes(), 40_000_000);
    const offCentre = ({ box }: { box: Box }) => Math.hypot(box.x + box.width / 2 - image.width / 2, box.y + box.height / 2 - image.height / 2);
    const face = (await detector.detect(image)).sort((a, b) => offCentre(a) - offCentre(b))[0];
    if (!face) continue;
    samples.push({ person, detected: face.landmarks, box: face.box, reference: (await landmarker.refine(image, face)).landmarks });
  }
}

function learn(from: readonly Sample[]): Omit<KeypointTemplate, "source"> {
  const sums = detectorKeypoints(from[0]!.detected).map(() => [0, 0]);
  for (const sample of from) {
    const toMeanFace = estimateSimilarity(sample.reference, MEAN_FACE_FIVE_POINTS);
    detectorKeypoints(sample.detected).forEach((point, k) => {
      const [x, y] = applySimilarity(toMeanFace, point);
      sums[k]![0]! += x;
      sums[k]![1]! += y;
    });
  }
  const keypoints = sums.map(([x, y]): Point => [x! / from.length, y! / from.length]);
  const rows = from.map((sample) => {
    const detected = detectorKeypoints(sample.detected);
    const toFrame = estimateSimilarity(detected, keypoints);
    return { features: keypointFeatures(detected, sample.box, toFrame), target: sample.reference.flatMap((point) => applySimilarity(toFrame, point)) };
  });
  return { keypoints, weights: leastSquares(rows.map((r) => r.features), rows.map((r) => r.target)) };
}

/**
 * W minimising |XW - Y|² + ridge |W|², from the normal equations by Gauss-Jordan elimination with partial pivoting. The
 * ridge is needed: fitted to the template, the four keypoints keep only 4 of their 8 degrees of freedom, so XᵀX is singular.
 */
function leastSquares(x: readonly number[][], y: readonly number[][]): number[][] {
  const n = x[0]!.length;
  const m = y[0]!.length;
  const ridge = 1e-6 * x.length;
  const system = Array.from({ length: n }, (_, i) =>
    Array.from({ length: n + m }, (_, j) => x.reduce((sum, row, r) => sum + row[i]! * (j < n ? row[j]! : y[r]![j - n]!), i === j ? ridge : 0)),
  );
  for (let col = 0; col < n; col++) {
    const pivot = system.slice(col).reduce((best, row, i) => (Math.abs(row[col]!) > Math.abs(system[best]![col]!) ? col + i : best), col);
    [system[col], system[pivot]] = [system[pivot]!, system[col]!];
    const lead = system[col]!;
    const scale = lead[col]!;
    for (let j = 0; j < n + m; j++) lead[j]! /= scale;
    for (const [i, row] of system.entries()) {
      if (i === col) continue;
      const factor = row[col]!;
      for (let j = 0; j < n + m; j++) row[j]! -= factor * lead[j]!;
    }
  }
  return system.map((row) => row.slice(n));
}

/** RMS over the mean face's five points of how far `predicted`'s alignment puts each from where the reference's puts it, in chip pixels. */
function alignmentError(predicted: readonly Point[], reference: readonly Point[]): number {
  const byPrediction = estimateSimilarity(predicted, MEAN_FACE_FIVE_POINTS);
  const fromReference = invertSimilarity(estimateSimilarity(reference, MEAN_FACE_FIVE_POINTS));
  const squares = MEAN_FACE_FIVE_POINTS.map((point) => {
    const [x, y] = applySimilarity(byPrediction, applySimilarity(fromReference, point));
    return (x - point[0]) ** 2 + (y - point[1]) ** 2;
  });
  // dlib's 150-pixel chip with padding 0.25 spans the mean face's unit square in 100 pixels.
  return 100 * Math.sqrt(squares.reduce((a, b) => a + b) / squares.length);
}

const meanOf = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const train = samples.filter((s) => s.person % 2 === 0);
const heldOut = samples.filter((s) => s.person % 2 === 1);
const halfModel = learn(train);
const error = (predict: (s: Sample) => readonly Point[]) => meanOf(heldOut.map((s) => alignmentError(predict(s), s.reference))).toFixed(2);
console.log(`held-out alignment error against landmark68 (fit on ${train.length} faces, measured on the other people's ${heldOut.length}), mean RMS chip pixels:`);
console.log(`  detector's five points ${error((s) => s.detected)}`);
console.log(`  template alone ${error((s) => {
  const detected = detectorKeypoints(s.detected);
  return MEAN_FACE_FIVE_POINTS.map((p) => applySimilarity(invertSimilarity(estimateSimilarity(detected, halfModel.keypoints)), p));
})}`);
console.log(`  template and linear map ${error((s) => predictFivePoints(halfModel, s.detected, s.box))}`);

const model = learn(samples);
const significant = (x: number) => Number(x.toPrecision(6));
const line = (values: readonly number[]) => `    ${JSON.stringify(values.map(significant))}`;
const source = `scripts/learn-keypoint-template.ts: the central BlazeFace front face of ${samples.length} of ${photos} lfw-devtrain photos`;
writeFileSync(
  KEYPOINT_TEMPLATE_PATH,
  `{\n  "source": ${JSON.stringify(source)},\n  "keypoints": [\n${model.keypoints.map(line).join(",\n")}\n  ],\n  "weights": [\n${model.weights.map(line).join(",\n")}\n  ]\n}\n`,
);
console.log(`-> ${KEYPOINT_TEMPLATE_PATH}`);
