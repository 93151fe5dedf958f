/** Model configuration: one TypeBox schema, the types derived from it. (Extended by the model pipeline.) */
import { Type, type Static } from "@sinclair/typebox";

const PointSchema = Type.Tuple([Type.Number(), Type.Number()]);
const RgbSchema = Type.Tuple([Type.Number(), Type.Number(), Type.Number()]);

/** A user-supplied ONNX embedder (for example an ArcFace model the user owns): one image input, one embedding output. */
export const CustomEmbedderSchema = Type.Object({
  path: Type.String({ minLength: 1, description: "The .onnx file" }),
  inputSize: Type.Integer({ minimum: 16, default: 112, description: "Side of the square aligned crop the network takes" }),
  layout: Type.Union([Type.Literal("nchw"), Type.Literal("nhwc")], { default: "nchw", description: "Input tensor layout" }),
  channels: Type.Union([Type.Literal("rgb"), Type.Literal("bgr")], { default: "rgb", description: "Channel order of the input" }),
  mean: RgbSchema,
  std: RgbSchema,
  template: Type.Array(PointSchema, {
    minItems: 5,
    maxItems: 5,
    description: "Where the eyes, nose tip and mouth corners land in the crop, in crop pixels (image left first)",
  }),
  threshold: Type.Number({ default: 0.3, description: "Cosine similarity at or above which two faces are the same person" }),
});
export type CustomEmbedderConfig = Static<typeof CustomEmbedderSchema>;

export const ModelConfigSchema = Type.Object({
  detector: Type.String({ default: "blazeface-front", description: "Face detector name (blazeface-front, blazeface-front-int8, blazeface, tiny-face-detector); 'none' uses the whole image as the face" }),
  landmarker: Type.String({ default: "landmark68", description: "Landmark refiner name (landmark68, landmark68-int8, facemesh; keypoint-template: no network, BlazeFace front's keypoints mapped by a fit learnt from landmark68); 'none' aligns on the detector's keypoints" }),
  embedder: Type.String({ default: "dlib-resnet-int8", description: "Face embedder name (dlib-resnet-int8: int8 weights and activations; dlib-resnet: float32); 'custom' uses customEmbedder" }),
  flip: Type.Boolean({ default: true, description: "Embed each face and its mirror image and sum the two (more accurate, twice the embedding work)" }),
  threshold: Type.Optional(Type.Number({ description: "Open-set similarity threshold; default the embedder's calibrated one" })),
  falseAlarmRate: Type.Optional(
    Type.Number({
      exclusiveMinimum: 0,
      exclusiveMaximum: 1,
      description: "Target share of strangers named as someone in open mode, held as the gallery grows (the threshold rises with the number of subjects); model.threshold overrides it",
    }),
  ),
  customEmbedder: Type.Optional(CustomEmbedderSchema),
  workers: Type.Integer({ minimum: 0, default: 0, description: "Inference worker threads; 0 = one per job slot, up to one per core, in an app-only process, and one per core in the embedded mode" }),
  maxPixels: Type.Integer({ minimum: 1, default: 40_000_000, description: "Images with more pixels are refused before decoding" }),
}, { default: {} });

export type ModelConfig = Static<typeof ModelConfigSchema>;
