/** Every ONNX file model:build produces. Each converter adds its own line. */
import { FACE_API_TARGETS } from "./face-api/targets.ts";
import { HUMAN_MODEL_TARGETS } from "./human-models.ts";
import { INT8_TARGETS } from "./int8.ts";

export interface BuildTarget {
  /** File name under model/onnx/. */
  file: string;
  build(): Promise<Uint8Array>;
  /** Files in the repository it is made from: the target is rebuilt when one of them is newer. */
  sources?: string[];
}

/** The int8 networks come last: each is made from its float32 file. */
export const BUILD_TARGETS: BuildTarget[] = [...FACE_API_TARGETS, ...HUMAN_MODEL_TARGETS, ...INT8_TARGETS];
