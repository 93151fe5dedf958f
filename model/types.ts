/** The contract between the model and the rest of facefleet. */

export type Point = readonly [x: number, y: number];

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface DetectedFace {
  box: Box;
  score: number;
  /** Five alignment points in image pixels: left eye, right eye, nose tip, left mouth corner, right mouth corner (subject's left/right as seen in the image: left = smaller x). */
  landmarks: readonly Point[];
  /** True when no face was detected and the whole image was used as the face (tight crops). */
  wholeImage: boolean;
}

/** How usable a face is (model/quality.ts). */
export interface FaceQuality {
  /** 0 (blurred) to 1 (sharp): the Laplacian variance of the aligned crop's luma, squashed to 0..1. */
  sharpness: number;
  /** Mean luma of the aligned crop, 0 (black) to 1 (white). */
  brightness: number;
  /** The shorter side of the detected box, in image pixels. */
  size: number;
}

export interface EmbeddedFace extends DetectedFace {
  /** L2-normalised embedding. */
  embedding: Float32Array;
  quality: FaceQuality;
}

export interface StageTimings {
  decodeMs: number;
  detectMs: number;
  alignMs: number;
  embedMs: number;
}

export interface ImageAnalysis {
  width: number;
  height: number;
  faces: EmbeddedFace[];
  timings: StageTimings;
}

export type ImageErrorCode =
  | "empty"
  | "not_an_image"
  | "unsupported_format"
  | "truncated"
  | "too_many_pixels"
  | "metadata_too_large"
  | "too_many_scans"
  | "undecodable";

/**
 * A problem with the caller's image (a 4xx), never a fault of ours. `message` is the caller's answer; `detail`, the
 * decoder's own words, is for the log only (libvips keeps one error buffer per process, so its text may even be
 * another image's).
 */
export class ImageError extends Error {
  constructor(
    readonly code: ImageErrorCode,
    message: string,
    readonly detail?: string,
  ) {
    super(message);
    this.name = "ImageError";
  }
}

/** Decoded pixels: 3 channels (RGB), row-major, width * height * 3 bytes. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Finds faces. Keypoints may be coarse; a FaceLandmarker refines them when the pipeline has one. */
export interface FaceDetector {
  readonly name: string;
  detect(image: RgbImage): Promise<DetectedFace[]>;
}

/** Refines a detected face's five alignment points. */
export interface FaceLandmarker {
  readonly name: string;
  refine(image: RgbImage, face: DetectedFace): Promise<DetectedFace>;
}

/** Turns aligned face crops into L2-normalised embeddings. Does its own pixel normalisation. */
export interface FaceEmbedder {
  readonly name: string;
  /** Side of the square aligned crop it takes, in pixels. */
  readonly inputSize: number;
  /** Where the five alignment points must land in the crop, in crop pixels. */
  readonly template: readonly Point[];
  readonly dimensions: number;
  embed(crops: RgbImage[]): Promise<Float32Array[]>;
}
