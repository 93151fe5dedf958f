/** Which face of a photo is enrolled, or why none is: a pure decision on the faces the detector found. */
import type { EmbeddedFace } from "../../model/types.ts";
import type { EnrollFace } from "../messages.ts";

/**
 * Faces with a shorter box side below this many pixels carry too little detail to enroll. The course's 64x64 crops,
 * which the classic contract enrolls, have faces of 23 to 30 pixels.
 */
export const MIN_ENROLL_FACE_PIXELS = 20;
/**
 * Below this sharpness (model/quality.ts) a face is too blurred to enroll. Low on purpose: small faces are upscaled to
 * the crop and read soft, LFW's 250x250 photos go down to about 0.07 and the course's 64x64 crops to 0.02, and both
 * enroll and match well.
 */
export const MIN_ENROLL_SHARPNESS = 0.01;
/** Mean luma outside this range: too dark or washed out. */
export const ENROLL_BRIGHTNESS = { min: 0.12, max: 0.92 };

export type EnrollRefusalCode = "no_face" | "multiple_faces" | "face_too_small" | "low_quality";

export type EnrollChoice = { face: EmbeddedFace } | { refusal: EnrollRefusalCode; message: string };

const area = (face: EmbeddedFace) => face.box.width * face.box.height;

/** Detected faces only, largest first: the whole-image stand-in the classic route falls back to is not a face. */
export function detectedLargestFirst(faces: EmbeddedFace[]): EmbeddedFace[] {
  return faces.filter((face) => !face.wholeImage).sort((a, b) => area(b) - area(a));
}

export function chooseEnrollmentFace(faces: EmbeddedFace[], which: EnrollFace): EnrollChoice {
  const found = detectedLargestFirst(faces);
  const face = found[0];
  if (!face) return { refusal: "no_face", message: "no face found in the photo" };
  if (found.length > 1 && which === "single") {
    return { refusal: "multiple_faces", message: `the photo has ${found.length} faces; send a photo of one person, or ask for ?face=largest` };
  }
  const { sharpness, brightness, size } = face.quality;
  if (size < MIN_ENROLL_FACE_PIXELS) {
    return { refusal: "face_too_small", message: `the face is ${Math.round(size)} pixels across; at least ${MIN_ENROLL_FACE_PIXELS} are needed` };
  }
  if (sharpness < MIN_ENROLL_SHARPNESS) return { refusal: "low_quality", message: `the face is too blurred (sharpness ${sharpness.toFixed(2)}, at least ${MIN_ENROLL_SHARPNESS} needed)` };
  if (brightness < ENROLL_BRIGHTNESS.min || brightness > ENROLL_BRIGHTNESS.max) {
    return { refusal: "low_quality", message: `the face is too ${brightness < ENROLL_BRIGHTNESS.min ? "dark" : "bright"} (brightness ${brightness.toFixed(2)})` };
  }
  return { face };
}
