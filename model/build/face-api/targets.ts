/** The face-api networks model:build converts. */
import type { BuildTarget } from "../targets.ts";
import { DLIB_RESNET_FILE } from "../../embedders/dlib-resnet.ts";
import { LANDMARK68_FILE } from "../../landmarkers/landmark68.ts";
import { TINY_FACE_DETECTOR_FILE } from "../../detectors/tiny-face-detector.ts";
import { buildLandmarkNet } from "./landmark-net.ts";
import { buildRecognitionNet } from "./recognition-net.ts";
import { buildTinyFaceDetectorNet } from "./tiny-face-detector-net.ts";

export const FACE_API_TARGETS: BuildTarget[] = [
  { file: DLIB_RESNET_FILE, build: async () => buildRecognitionNet() },
  { file: LANDMARK68_FILE, build: async () => buildLandmarkNet() },
  { file: TINY_FACE_DETECTOR_FILE, build: async () => buildTinyFaceDetectorNet() },
];
