/** Every ONNX file model:build produces. Each converter adds its own line. */
import { FACE_API_TARGETS } from "./face-api/targets.ts";
import { HUMAN_MODEL_TARGETS } from "./human-models.ts";

export interface BuildTarget {
  /** File name under model/onnx/. */
  file: string;
  build(): Promise<Uint8Array>;
}

export const BUILD_TARGETS: BuildTarget[] = [...FACE_API_TARGETS, ...HUMAN_MODEL_TARGETS];
