/** @vladmandic/face-api on @tensorflow/tfjs-backend-wasm: what a Node user would run instead of facefleet's model. */
import { dirname, join } from "node:path";
import * as faceapi from "@vladmandic/face-api/dist/face-api.node-wasm.js";
import { decodeImage } from "../model/decode.ts";

const MODEL_DIR = join(dirname(require.resolve("@vladmandic/face-api/package.json")), "model");
const WASM_DIR = `${join(dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "dist")}/`;

interface WasmTf {
  setWasmPaths(prefix: string): void;
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
}

/** face-api's default pipeline (SSD MobileNet v1 -> 68 landmarks -> dlib ResNet descriptor) on one image's bytes. */
export type FaceApiAnalyzer = (bytes: Uint8Array) => Promise<number>;

export async function loadFaceApiWasm(maxPixels: number): Promise<FaceApiAnalyzer> {
  const tf = faceapi.tf as unknown as WasmTf;
  tf.setWasmPaths(WASM_DIR);
  await tf.setBackend("wasm");
  await tf.ready();
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(MODEL_DIR);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(MODEL_DIR);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(MODEL_DIR);
  return async (bytes) => {
    const image = await decodeImage(bytes, maxPixels);
    const tensor = faceapi.tf.tensor3d(image.data, [image.height, image.width, 3], "int32");
    try {
      const faces = await faceapi.detectAllFaces(tensor, new faceapi.SsdMobilenetv1Options()).withFaceLandmarks().withFaceDescriptors();
      return faces.length;
    } finally {
      tensor.dispose();
    }
  };
}
