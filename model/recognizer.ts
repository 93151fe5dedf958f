/** The pipeline on one thread: decode -> detect -> landmarks -> align -> embed, with the time each stage took. */
import { alignFace, flipHorizontal, templateOverImage } from "./align.ts";
import { decodeImage } from "./decode.ts";
import { l2Normalise } from "./embedders/l2-normalise.ts";
import { faceQuality } from "./quality.ts";
import type { PipelineParts } from "./registry.ts";
import type { DetectedFace, EmbeddedFace, ImageAnalysis, RgbImage, StageTimings } from "./types.ts";

export interface RecognizerOptions {
  maxPixels: number;
  /** Embed each face and its mirror image and sum the two. */
  flip: boolean;
}

export class Recognizer {
  constructor(
    readonly parts: PipelineParts,
    private readonly options: RecognizerOptions,
  ) {}

  async analyzeBytes(bytes: Uint8Array): Promise<ImageAnalysis> {
    const started = performance.now();
    const image = await decodeImage(bytes, this.options.maxPixels);
    return this.analyze(image, performance.now() - started);
  }

  /** Every face in the image, or the whole image as one face when none is detected. Landmarker time counts as alignment. */
  async analyze(image: RgbImage, decodeMs = 0): Promise<ImageAnalysis> {
    const { detector, landmarker, embedder } = this.parts;
    const timings: StageTimings = { decodeMs, detectMs: 0, alignMs: 0, embedMs: 0 };
    let mark = performance.now();
    const lap = () => {
      const now = performance.now();
      const elapsed = now - mark;
      mark = now;
      return elapsed;
    };

    const detected = detector ? await detector.detect(image) : [];
    timings.detectMs = lap();

    let faces: DetectedFace[];
    if (detected.length > 0) {
      faces = landmarker ? await Promise.all(detected.map((face) => landmarker.refine(image, face))) : detected;
    } else {
      faces = [wholeImageFace(image, this.parts)];
    }
    const crops = faces.map((face) => alignFace(image, face.landmarks, embedder.template, embedder.inputSize));
    const batch = this.options.flip ? [...crops, ...crops.map(flipHorizontal)] : crops;
    timings.alignMs = lap();

    const vectors = await embedder.embed(batch);
    const embedded: EmbeddedFace[] = faces.map((face, i) => ({
      ...face,
      embedding: this.options.flip ? sumNormalised(vectors[i]!, vectors[i + faces.length]!) : vectors[i]!,
      quality: faceQuality(crops[i]!, face.box),
    }));
    timings.embedMs = lap();
    return { width: image.width, height: image.height, faces: embedded, timings };
  }
}

/** The whole image as the face, its alignment points where the embedder's template puts them (a tight crop). */
function wholeImageFace(image: RgbImage, { embedder }: PipelineParts): DetectedFace {
  return {
    box: { x: 0, y: 0, width: image.width, height: image.height },
    score: 0,
    landmarks: templateOverImage(embedder.template, embedder.inputSize, image.width, image.height),
    wholeImage: true,
  };
}

function sumNormalised(a: Float32Array, b: Float32Array): Float32Array {
  return l2Normalise(a.map((value, i) => value + b[i]!));
}
