/** The face-api networks model:build converts. */
import type { BuildTarget } from "../targets.ts";
import { buildLandmarkNet } from "./landmark-net.ts";
import { buildRecognitionNet } from "./recognition-net.ts";

export const DLIB_RESNET_FILE = "face-api-dlib-resnet.onnx";
export const LANDMARK68_FILE = "face-api-landmark68.onnx";

export const FACE_API_TARGETS: BuildTarget[] = [
  { file: DLIB_RESNET_FILE, build: async () => buildRecognitionNet() },
  { file: LANDMARK68_FILE, build: async () => buildLandmarkNet() },
];
