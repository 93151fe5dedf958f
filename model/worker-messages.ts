/** The messages between the inference pool and its worker threads. */
import type { ModelConfig } from "./config.ts";
import { ImageError, type ImageErrorCode, type ImageAnalysis } from "./types.ts";

export type ToWorker =
  | { type: "load"; config: ModelConfig; onnxDir: string }
  | { type: "analyze"; id: number; image: Uint8Array };

export type FromWorker =
  | { type: "ready" }
  | { type: "load-failed"; error: WorkerError }
  | { type: "analysis"; id: number; analysis: ImageAnalysis }
  | { type: "analysis-failed"; id: number; error: WorkerError };

/** An error as it crosses the thread boundary; an ImageError keeps its code. */
export interface WorkerError {
  message: string;
  imageErrorCode?: ImageErrorCode;
  imageErrorDetail?: string;
}

export function toWorkerError(error: unknown): WorkerError {
  if (error instanceof ImageError) return { message: error.message, imageErrorCode: error.code, imageErrorDetail: error.detail };
  return { message: error instanceof Error ? (error.stack ?? error.message) : String(error) };
}

export function fromWorkerError(error: WorkerError): Error {
  return error.imageErrorCode ? new ImageError(error.imageErrorCode, error.message, error.imageErrorDetail) : new Error(error.message);
}
