/** face-api's own TensorFlow.js networks (pure tfjs, CPU backend) as the independent reference for parity tests. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setBackend } from "@tensorflow/tfjs/dist/index.js";
// face-api's build without bundled tfjs runs on the installed @tensorflow/tfjs; its `tf` re-export carries face-api's tensor types.
import { FaceLandmark68Net, FaceRecognitionNet, TinyFaceDetector, tf } from "@vladmandic/face-api/dist/face-api.esm-nobundle.js";
import { FACE_API_MODEL_DIR } from "../../../model/build/face-api/weights.ts";

interface Loadable {
  loadFromWeightMap(weightMap: tf.NamedTensorMap): void;
}

interface ReferenceNet extends Loadable {
  forward(input: tf.Tensor3D[], inputSize?: number): Promise<tf.Tensor>;
}

/** Loads a face-api net with tfjs' own weight decoding (dequantisation included), on the CPU backend. */
async function load<T extends Loadable>(net: T, model: string): Promise<T> {
  await setBackend("cpu");
  const manifest = JSON.parse(readFileSync(join(FACE_API_MODEL_DIR, `${model}-weights_manifest.json`), "utf8")) as {
    weights: tf.io.WeightsManifestEntry[];
  }[];
  const bin = readFileSync(join(FACE_API_MODEL_DIR, `${model}.bin`));
  const buffer = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) as ArrayBuffer;
  net.loadFromWeightMap(tf.io.decodeWeights(buffer, manifest[0]!.weights));
  return net;
}

/** Square NHWC float pixels (0..255) as the array of images face-api takes for a batch. */
function images(pixels: Float32Array, size: number): tf.Tensor3D[] {
  const batch = tf.tensor4d(pixels, [pixels.length / (size * size * 3), size, size, 3]);
  const unstacked = tf.unstack(batch) as tf.Tensor3D[];
  batch.dispose();
  return unstacked;
}

/** Runs a net on a batch of square images and returns its raw output. */
export async function referenceForward(net: ReferenceNet, pixels: Float32Array, size: number): Promise<Float32Array> {
  const input = images(pixels, size);
  const output = await net.forward(input, size);
  const values = (await output.data()) as Float32Array;
  for (const tensor of [...input, output]) tensor.dispose();
  return values;
}

export const loadReferenceRecognitionNet = () => load(new FaceRecognitionNet(), "face_recognition_model");
export const loadReferenceLandmarkNet = () => load(new FaceLandmark68Net(), "face_landmark_68_model");
export const loadReferenceTinyFaceDetector = () => load(new TinyFaceDetector(), "tiny_face_detector_model");

export function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  return a.reduce((max, value, i) => Math.max(max, Math.abs(value - b[i]!)), 0);
}
