/** Every detector, landmarker and embedder the pipeline can be configured with, by name. */
import type { ModelConfig } from "./config.ts";
import { BLAZEFACE_FRONT, BlazeFaceDetector } from "./detectors/blazeface.ts";
import { TinyFaceDetector } from "./detectors/tiny-face-detector.ts";
import { CustomOnnxEmbedder } from "./embedders/custom-onnx.ts";
import { DLIB_RESNET_FILE, DlibResNetEmbedder } from "./embedders/dlib-resnet.ts";
import { FaceMeshLandmarker } from "./landmarkers/facemesh.ts";
import { KeypointTemplateLandmarker } from "./landmarkers/keypoint-template.ts";
import { DEFAULT_LANDMARK68_OPTIONS, Landmark68, LANDMARK68_FILE } from "./landmarkers/landmark68.ts";
import { int8File } from "./onnx-session.ts";
import { calibratedPoint, DEFAULT_FAR, falseAlarmThreshold, fixedThreshold, type FarCalibration, type OpenSetThreshold } from "./open-set.ts";
import type { FaceDetector, FaceEmbedder, FaceLandmarker } from "./types.ts";

type Loader<T> = (onnxDir: string, config: ModelConfig) => Promise<T>;

/** The name that switches a stage off. */
export const NONE = "none";

export const DETECTORS: Record<string, Loader<FaceDetector>> = {
  blazeface: (onnxDir) => BlazeFaceDetector.load(onnxDir),
  "blazeface-front": (onnxDir) => BlazeFaceDetector.load(onnxDir, { model: BLAZEFACE_FRONT }),
  "blazeface-front-int8": (onnxDir) => BlazeFaceDetector.load(onnxDir, { model: { ...BLAZEFACE_FRONT, file: int8File(BLAZEFACE_FRONT.file) } }),
  "tiny-face-detector": (onnxDir) => TinyFaceDetector.load(onnxDir),
};

export const LANDMARKERS: Record<string, Loader<FaceLandmarker>> = {
  landmark68: (onnxDir) => Landmark68.load(onnxDir),
  "landmark68-int8": (onnxDir) => Landmark68.load(onnxDir, DEFAULT_LANDMARK68_OPTIONS, int8File(LANDMARK68_FILE)),
  facemesh: (onnxDir) => FaceMeshLandmarker.load(onnxDir),
  "keypoint-template": () => KeypointTemplateLandmarker.load(),
};

export interface EmbedderEntry {
  load: Loader<FaceEmbedder>;
  /**
   * Its different-person similarities on lfw-devtrain (see model/README.md): the operating points a request may name
   * (`far`), the default threshold (the one at DEFAULT_FAR, which it must hold), and a false-alarm target's
   * (model.falseAlarmRate). Without one, the embedder has only the threshold configured for it.
   */
  calibration?: FarCalibration;
}

/**
 * dlib-resnet with flip on all 5,923,194 different-person pairs of lfw-devtrain's 3,443 images (see model/README.md);
 * below 1e-5 only a few dozen pairs decide each figure.
 */
const DLIB_RESNET_CALIBRATION: FarCalibration = [
  [1e-1, 0.8835],
  [1e-2, 0.9121],
  [1e-3, 0.9305],
  [1e-4, 0.9443],
  [1e-5, 0.9542],
  [1e-6, 0.9622],
];

/** The same measurement for dlib-resnet-int8 (scripts/calibrate.ts's table): within 0.0004 of the float32 network's. */
const DLIB_RESNET_INT8_CALIBRATION: FarCalibration = [
  [1e-1, 0.8838],
  [1e-2, 0.9123],
  [1e-3, 0.9307],
  [1e-4, 0.9446],
  [1e-5, 0.9544],
  [1e-6, 0.9619],
];

export const EMBEDDERS: Record<string, EmbedderEntry> = {
  "dlib-resnet": { load: (onnxDir) => DlibResNetEmbedder.load(onnxDir), calibration: DLIB_RESNET_CALIBRATION },
  // "extended": its QLinearConvs stay NCHW, without the layout transposes "all" puts between them (model/README.md).
  "dlib-resnet-int8": { load: (onnxDir) => DlibResNetEmbedder.load(onnxDir, int8File(DLIB_RESNET_FILE), "extended"), calibration: DLIB_RESNET_INT8_CALIBRATION },
  custom: {
    load: (_, config) => {
      if (!config.customEmbedder) throw new Error("model.embedder is 'custom' but model.customEmbedder is not set");
      return CustomOnnxEmbedder.load(config.customEmbedder);
    },
  },
};

/**
 * The open-set threshold in force: the configured one; else, with model.falseAlarmRate, the one that holds that rate for
 * the gallery's size; else the custom embedder's, else the embedder's calibrated one at DEFAULT_FAR.
 */
export function thresholdFor(config: ModelConfig): OpenSetThreshold {
  if (config.threshold !== undefined) return fixedThreshold(config.threshold);
  const custom = config.embedder === "custom";
  const entry = EMBEDDERS[config.embedder];
  if (!entry) throw new Error(`unknown embedder '${config.embedder}'; known: ${Object.keys(EMBEDDERS).join(", ")}`);
  if (config.falseAlarmRate !== undefined) {
    if (!entry.calibration) throw new Error(`embedder '${config.embedder}' has no calibration for model.falseAlarmRate; set model.threshold`);
    return falseAlarmThreshold(entry.calibration, config.falseAlarmRate);
  }
  if (custom && config.customEmbedder) return fixedThreshold(config.customEmbedder.threshold);
  if (!entry.calibration) throw new Error(`embedder '${config.embedder}' has no calibrated threshold; set model.threshold`);
  return calibratedPoint(entry.calibration, DEFAULT_FAR);
}

/** The false accept rates a request may ask for, with their thresholds: the configured embedder's calibration (none for a custom one). */
export function operatingPointsFor(config: ModelConfig): FarCalibration {
  return EMBEDDERS[config.embedder]?.calibration ?? [];
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
