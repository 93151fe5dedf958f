/** Every detector, landmarker and embedder the pipeline can be configured with, by name. */
import type { ModelConfig } from "./config.ts";
import { BLAZEFACE_FRONT, BlazeFaceDetector } from "./detectors/blazeface.ts";
import { TinyFaceDetector } from "./detectors/tiny-face-detector.ts";
import { CustomOnnxEmbedder } from "./embedders/custom-onnx.ts";
import { DlibResNetEmbedder } from "./embedders/dlib-resnet.ts";
import { FaceMeshLandmarker } from "./landmarkers/facemesh.ts";
import { Landmark68 } from "./landmarkers/landmark68.ts";
import type { FaceDetector, FaceEmbedder, FaceLandmarker } from "./types.ts";

type Loader<T> = (onnxDir: string, config: ModelConfig) => Promise<T>;

/** The name that switches a stage off. */
export const NONE = "none";

export const DETECTORS: Record<string, Loader<FaceDetector>> = {
  blazeface: (onnxDir) => BlazeFaceDetector.load(onnxDir),
  "blazeface-front": (onnxDir) => BlazeFaceDetector.load(onnxDir, { model: BLAZEFACE_FRONT }),
  "tiny-face-detector": (onnxDir) => TinyFaceDetector.load(onnxDir),
};

export const LANDMARKERS: Record<string, Loader<FaceLandmarker>> = {
  landmark68: (onnxDir) => Landmark68.load(onnxDir),
  facemesh: (onnxDir) => FaceMeshLandmarker.load(onnxDir),
};

export interface EmbedderEntry {
  load: Loader<FaceEmbedder>;
  /** Open-set cosine-similarity threshold calibrated on lfw-devtrain: the one at a false accept rate of 1e-3 (see model/README.md). */
  threshold?: number;
}

export const EMBEDDERS: Record<string, EmbedderEntry> = {
  "dlib-resnet": { load: (onnxDir) => DlibResNetEmbedder.load(onnxDir), threshold: 0.93 },
  custom: {
    load: (_, config) => {
      if (!config.customEmbedder) throw new Error("model.embedder is 'custom' but model.customEmbedder is not set");
      return CustomOnnxEmbedder.load(config.customEmbedder);
    },
  },
};

/** The open-set threshold in force: the configured one, else the custom embedder's, else the embedder's calibrated one. */
export function thresholdFor(config: ModelConfig): number {
  if (config.threshold !== undefined) return config.threshold;
  if (config.embedder === "custom" && config.customEmbedder) return config.customEmbedder.threshold;
  const entry = EMBEDDERS[config.embedder];
  if (!entry) throw new Error(`unknown embedder '${config.embedder}'; known: ${Object.keys(EMBEDDERS).join(", ")}`);
  if (entry.threshold === undefined) throw new Error(`embedder '${config.embedder}' has no calibrated threshold; set model.threshold`);
  return entry.threshold;
}

export interface PipelineParts {
  detector?: FaceDetector;
  landmarker?: FaceLandmarker;
  embedder: FaceEmbedder;
}

export async function loadParts(config: ModelConfig, onnxDir: string): Promise<PipelineParts> {
  const pick = <T>(kind: string, table: Record<string, T>, name: string): T => {
    const entry = table[name];
    if (!entry) throw new Error(`unknown ${kind} '${name}'; known: ${[...Object.keys(table), ...(kind === "embedder" ? [] : [NONE])].join(", ")}`);
    return entry;
  };
  const [detector, landmarker, embedder] = await Promise.all([
    config.detector === NONE ? undefined : pick("detector", DETECTORS, config.detector)(onnxDir, config),
    config.landmarker === NONE ? undefined : pick("landmarker", LANDMARKERS, config.landmarker)(onnxDir, config),
    pick("embedder", EMBEDDERS, config.embedder).load(onnxDir, config),
  ]);
  return { detector, landmarker, embedder };
}
