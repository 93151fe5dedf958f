/** Model configuration: one TypeBox schema, the types derived from it. (Extended by the model pipeline.) */
import { Type, type Static } from "@sinclair/typebox";

export const ModelConfigSchema = Type.Object({
  detector: Type.String({ default: "blazeface", description: "Face detector name" }),
  embedder: Type.String({ default: "mobilefacenet", description: "Face embedder name" }),
  workers: Type.Integer({ minimum: 0, default: 0, description: "Inference worker threads; 0 = number of cores" }),
  maxPixels: Type.Integer({ minimum: 1, default: 40_000_000, description: "Images with more pixels are refused before decoding" }),
}, { default: {} });

export type ModelConfig = Static<typeof ModelConfigSchema>;
