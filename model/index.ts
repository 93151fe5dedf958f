/** What the rest of facefleet uses from model/. */
export { InferencePool, WorkerCrashError, type ImageSource, type PoolOptions, type PoolStats } from "./pool.ts";
export { decodeImage, inspectImage, type ImageInfo, type SupportedFormat } from "./decode.ts";
export { operatingPointsFor, thresholdFor } from "./registry.ts";
export { calibratedThreshold, type FarCalibration, type OpenSetThreshold } from "./open-set.ts";
export { ONNX_DIR, ModelFileMissingError } from "./onnx-session.ts";
export { ModelConfigSchema, CustomEmbedderSchema, type ModelConfig, type CustomEmbedderConfig } from "./config.ts";
export { Gallery, GalleryFormatError, type Match, type SubjectSummary } from "./gallery.ts";
export * from "./types.ts";
