/** The int8 networks model:build writes beside the float32 ones, from the calibration tables in ./calibration. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BLAZEFACE_FRONT } from "../detectors/blazeface.ts";
import { DLIB_RESNET_FILE } from "../embedders/dlib-resnet.ts";
import { LANDMARK68_FILE } from "../landmarkers/landmark68.ts";
import { int8File, ONNX_DIR } from "../onnx-session.ts";
import type { BuildTarget } from "./targets.ts";
import { decodeModel, quantiseModel, type CalibrationTable, type QuantisationOptions } from "./quantize.ts";

export interface Int8Network {
  /** Also the calibration table's name: calibration/<network>.json. */
  network: string;
  /** The float32 network's file under model/onnx/ (built first). */
  file: string;
  /** Side of its square NHWC input, which tells its runs apart when calibrating. */
  inputSize: number;
  quantisation: QuantisationOptions;
}

export const INT8_NETWORKS: Int8Network[] = [
  { network: "dlib-resnet", file: DLIB_RESNET_FILE, inputSize: 150, quantisation: { ops: [] } },
  { network: "landmark68", file: LANDMARK68_FILE, inputSize: 112, quantisation: { ops: ["Add"] } },
  { network: "blazeface-front", file: BLAZEFACE_FRONT.file, inputSize: BLAZEFACE_FRONT.inputSize, quantisation: { ops: ["Add"] } },
];

export const CALIBRATION_DIR = join(import.meta.dir, "calibration");

export function calibrationPath(network: string): string {
  return join(CALIBRATION_DIR, `${network}.json`);
}

export function buildInt8(network: Int8Network, onnxDir = ONNX_DIR): Uint8Array {
  const table = JSON.parse(readFileSync(calibrationPath(network.network), "utf8")) as CalibrationTable;
  return quantiseModel(decodeModel(readFileSync(join(onnxDir, network.file))), table, network.quantisation);
}

export const INT8_TARGETS: BuildTarget[] = INT8_NETWORKS.map((network) => ({
  file: int8File(network.file),
  build: async () => buildInt8(network),
  sources: [calibrationPath(network.network)],
}));
