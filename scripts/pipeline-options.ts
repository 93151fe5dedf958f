/** The command-line options the model scripts share for trying another pipeline than the configured one. */
import type { ModelConfig } from "../model/config.ts";
import { loadConfig } from "../roles/config.ts";

export const PIPELINE_OPTIONS = {
  detector: { type: "string" },
  landmarker: { type: "string" },
  embedder: { type: "string" },
  flip: { type: "string" },
} as const;

export const PIPELINE_USAGE = "[--detector D] [--landmarker L] [--embedder E] [--flip true|false]";

/** The configured model settings (environment, config file, defaults) with the command line's choices over them. */
export function pipelineConfig(args: { detector?: string; landmarker?: string; embedder?: string; flip?: string }): ModelConfig {
  const base = loadConfig().model;
  return {
    ...base,
    detector: args.detector ?? base.detector,
    landmarker: args.landmarker ?? base.landmarker,
    embedder: args.embedder ?? base.embedder,
    flip: args.flip === undefined ? base.flip : args.flip === "true",
  };
}
