/**
 * Untrusted image bytes to RGB pixels: JPEG, PNG and WebP only, EXIF orientation applied. The header is read and the
 * metadata bounded in plain TypeScript first (image-header.ts); only then do the bytes reach libvips, with its pixel
 * limit. Every failure to decode is the image's: an ImageError, never a fault of the instance.
 */
import type { Sharp, SharpConstructor } from "sharp";
import { readImageHeader, type SupportedFormat } from "./image-header.ts";
import { ImageError, type RgbImage } from "./types.ts";

/**
 * sharp, loaded at the first decode: the web role only inspects headers, and sharp with libvips took about 30 MB of
 * its RSS.
 */
let sharpLoaded: Promise<SharpConstructor> | undefined;
function loadSharp(): Promise<SharpConstructor> {
  return (sharpLoaded ??= import("sharp").then(({ default: sharp }) => {
    // libvips keeps recent operations and their buffers (up to 50 MB, 100 operations) for reuse. Every image here is a
    // new one, so the cache only holds memory: measured, it added about 100 MB to the web role under an upload burst.
    sharp.cache(false);
    return sharp;
  }));
}

export type { SupportedFormat };

export interface ImageInfo {
  format: SupportedFormat;
  /** Upright size, after EXIF orientation. */
  width: number;
  height: number;
}

/**
 * Checks format, size, the pixel cap and the metadata's bounds from the bytes given, without libvips: no pixel is
 * decoded, so `bytes` may be just the start of a file. A file cut inside its header is `truncated`; one cut after it
 * passes here and is caught by `decodeImage`.
 */
export async function inspectImage(bytes: Uint8Array, maxPixels: number): Promise<ImageInfo> {
  return upright(bytes, maxPixels, false);
}

/** Decodes to upright RGB (alpha dropped, greyscale expanded). */
export async function decodeImage(bytes: Uint8Array, maxPixels: number): Promise<RgbImage> {
  upright(bytes, maxPixels, true);
  try {
    const { data, info } = await (await open(bytes, maxPixels)).removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decode produced ${info.channels} channels`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
  } catch (error) {
    throw decodeFailure(error);
  }
}

function upright(bytes: Uint8Array, maxPixels: number, whole: boolean): ImageInfo {
  const { format, width, height, orientation } = readImageHeader(bytes, { maxPixels, whole });
  const swapped = orientation >= 5;
  return { format, width: swapped ? height : width, height: swapped ? width : height };
}

/** Embedded ICC profiles are ignored: colour-managing costs ~2 ms even on a 64x64 image and the networks do not need it. */
async function open(bytes: Uint8Array, maxPixels: number): Promise<Sharp> {
  const sharp = await loadSharp();
  return sharp(bytes, { limitInputPixels: maxPixels, failOn: "truncated", autoOrient: true, sequentialRead: true, ignoreIcc: true });
}

/**
 * Whatever libvips says about bytes that passed the header walk, it is the image that cannot be decoded. sharp reports
 * only message text; these patterns are libvips' wording for a file that ends early and for the pixel limit. The
 * answer is one fixed message per code: libvips' text goes to the log only, as the error's detail.
 */
function decodeFailure(error: unknown): ImageError {
  const detail = error instanceof Error ? error.message.trim() : String(error);
  if (/pixel limit/i.test(detail)) return new ImageError("too_many_pixels", "the image has too many pixels", detail);
  if (/premature end|truncated|unexpected end|not enough data|read error/i.test(detail)) return new ImageError("truncated", "the image is truncated", detail);
  return new ImageError("undecodable", "the image cannot be decoded", detail);
}
