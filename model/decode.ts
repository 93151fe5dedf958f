/** Untrusted image bytes to RGB pixels with sharp: JPEG, PNG and WebP only, EXIF orientation applied, bombs refused from the header. */
import sharp, { type Sharp } from "sharp";
import { ImageError, type RgbImage } from "./types.ts";

// libvips keeps recent operations and their buffers (up to 50 MB, 100 operations) for reuse. Every image here is a
// new one, so the cache only holds memory: measured, it added about 100 MB to the web role under an upload burst.
sharp.cache(false);

export const SUPPORTED_FORMATS = ["jpeg", "png", "webp"] as const;
export type SupportedFormat = (typeof SUPPORTED_FORMATS)[number];

export interface ImageInfo {
  format: SupportedFormat;
  /** Upright size, after EXIF orientation. */
  width: number;
  height: number;
}

/**
 * Checks format, size and the pixel cap from the header alone: no pixel is decoded, so `bytes` may be just the start
 * of a file. A file cut inside its header is `truncated`; one cut after it passes here and is caught by `decodeImage`.
 */
export async function inspectImage(bytes: Uint8Array, maxPixels: number): Promise<ImageInfo> {
  return readHeader(bytes, maxPixels);
}

/** Decodes to upright RGB (alpha dropped, greyscale expanded). */
export async function decodeImage(bytes: Uint8Array, maxPixels: number): Promise<RgbImage> {
  await readHeader(bytes, maxPixels);
  const { data, info } = await run(() =>
    open(bytes, maxPixels).removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true }),
  );
  if (info.channels !== 3) throw new Error(`decode produced ${info.channels} channels`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

async function readHeader(bytes: Uint8Array, maxPixels: number): Promise<ImageInfo> {
  if (bytes.byteLength === 0) throw new ImageError("empty", "the image is empty");
  // metadata() reads the header only, so a bomb is refused here before any pixel is decoded.
  const metadata = await run(() => sharp(bytes, { limitInputPixels: false }).metadata());
  const format = metadata.format;
  if (!SUPPORTED_FORMATS.includes(format as SupportedFormat)) {
    throw new ImageError("unsupported_format", `${format} images are not supported; send JPEG, PNG or WebP`);
  }
  const { width, height } = metadata;
  if (!width || !height) throw new ImageError("not_an_image", "the image has no size");
  if (width * height > maxPixels) {
    throw new ImageError("too_many_pixels", `the image has ${width}x${height} pixels; the limit is ${maxPixels} pixels`);
  }
  const swapped = (metadata.orientation ?? 1) >= 5;
  return { format: format as SupportedFormat, width: swapped ? height : width, height: swapped ? width : height };
}

/** Embedded ICC profiles are ignored: colour-managing costs ~2 ms even on a 64x64 image and the networks do not need it. */
function open(bytes: Uint8Array, maxPixels: number): Sharp {
  return sharp(bytes, { limitInputPixels: maxPixels, failOn: "truncated", autoOrient: true, sequentialRead: true, ignoreIcc: true });
}

async function run<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw imageError(error);
  }
}

/** sharp reports problems only as message text; these patterns are libvips' and sharp's wording. */
function imageError(error: unknown): Error {
  if (error instanceof ImageError || !(error instanceof Error)) return error as Error;
  const message = error.message;
  if (/unsupported image format/i.test(message)) return new ImageError("not_an_image", "the bytes are not an image");
  if (/pixel limit/i.test(message)) return new ImageError("too_many_pixels", "the image has too many pixels");
  if (/premature end|truncated|unexpected end|not enough data|read error|corrupt|invalid|damaged|bad |CRC/i.test(message)) {
    return new ImageError("truncated", `the image is truncated or damaged (${message.trim()})`);
  }
  return error;
}
