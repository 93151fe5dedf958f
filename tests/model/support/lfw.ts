/** Real face photos for model tests, from ../shared/datasets/lfw-devtrain (tests skip when it is absent). */
import { existsSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import type { RgbImage } from "../../../model/types.ts";

export const LFW_DIR = join(import.meta.dir, "..", "..", "..", "..", "shared", "datasets", "lfw-devtrain");
export const HAVE_LFW = existsSync(join(LFW_DIR, "images"));
if (!HAVE_LFW) console.warn(`skipping model tests that need LFW photos: ${LFW_DIR} is absent`);

function lfwPath(name: string, number: number): string {
  return join(LFW_DIR, "images", name, `${name}_${String(number).padStart(4, "0")}.jpg`);
}

/** Decodes an LFW photo; with `crop`, only that square (left, top, side), resized to `size`. */
export async function readLfw(name: string, number: number, crop?: { left: number; top: number; side: number; size: number }): Promise<RgbImage> {
  let image = sharp(lfwPath(name, number)).removeAlpha();
  if (crop) image = image.extract({ left: crop.left, top: crop.top, width: crop.side, height: crop.side }).resize(crop.size, crop.size);
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

/** Three people, one photo each: the photos the model tests share. */
export const readSamplePhotos = (): Promise<RgbImage[]> => Promise.all([readLfw("Aaron_Peirsol", 1), readLfw("Aaron_Sorkin", 1), readLfw("AJ_Cook", 1)]);
