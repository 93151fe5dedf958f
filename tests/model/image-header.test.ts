// The header walk that stands between untrusted bytes and libvips: its answers match sharp's on real photos (and on
// PNG and WebP transcodes of them, with every EXIF orientation), it bounds metadata and scans, and it stays linear
// and in bounds on broken input.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync } from "node:fs";
import { deflateSync } from "node:zlib";
import { join } from "node:path";
import sharp, { type Sharp } from "sharp";
import { readImageHeader, MAX_CHUNKS, MAX_JPEG_SCANS, METADATA_LIMITS } from "../../model/image-header.ts";
import { decodeImage, inspectImage } from "../../model/decode.ts";
import { ImageError, type ImageErrorCode } from "../../model/types.ts";
import { enrollmentPhotos, queryPhotos, STRANGERS, TWO_FACES } from "../support/fixtures.ts";
import * as hostile from "../support/hostile-images.ts";
import { HAVE_LFW, LFW_DIR } from "./support/lfw.ts";

const LIMIT = 40_000_000;

// 80 transcodes with sharp: seconds on a loaded 2-core machine.
setDefaultTimeout(30_000);

async function sharpAnswer(bytes: Uint8Array): Promise<Record<string, unknown>> {
  const metadata = await sharp(bytes).metadata();
  return { format: metadata.format, width: metadata.width, height: metadata.height, orientation: metadata.orientation ?? 1 };
}

async function expectSameAsSharp(files: string[]) {
  for (const file of files) {
    const bytes = await Bun.file(file).bytes();
    const header: Record<string, unknown> = { file, ...readImageHeader(bytes, { maxPixels: LIMIT, whole: true }) };
    expect(header).toEqual({ file, ...(await sharpAnswer(bytes)) });
  }
}

function refusal(run: () => unknown): Promise<ImageErrorCode> {
  return Promise.resolve()
    .then(run)
    .then(
      () => {
        throw new Error("the image was accepted");
      },
      (error: unknown) => {
        if (error instanceof ImageError) return error.code;
        throw error;
      },
    );
}

describe("the header walk answers as sharp does", () => {
  test("on every photo of the sample set", async () => {
    await expectSameAsSharp([...enrollmentPhotos(), ...queryPhotos()].map((photo) => photo.file).concat(STRANGERS, [TWO_FACES.file]));
  });

  test.skipIf(!HAVE_LFW)("on 300 LFW photos and the course's 100 images", async () => {
    const people = readdirSync(join(LFW_DIR, "images")).sort().slice(0, 300);
    await expectSameAsSharp(people.map((person) => join(LFW_DIR, "images", person, readdirSync(join(LFW_DIR, "images", person))[0]!)));
    const course = join(LFW_DIR, "..", "cse546", "face_images_100");
    await expectSameAsSharp(readdirSync(course).map((file) => join(course, file)));
  });

  test("on JPEG (baseline, progressive, CMYK), PNG (RGB, grey interlaced, palette, 16-bit) and WebP (lossy, lossless, with alpha) transcodes of a photo, at every EXIF orientation", async () => {
    const photo = sharp(await Bun.file(queryPhotos()[0]!.file).bytes());
    for (let orientation = 1; orientation <= 8; orientation++) {
      for (const encode of [
        (s: Sharp) => s.jpeg(),
        (s: Sharp) => s.jpeg({ progressive: true, mozjpeg: true }),
        (s: Sharp) => s.png(),
        (s: Sharp) => s.webp(),
        (s: Sharp) => s.webp({ lossless: true }),
        (s: Sharp) => s.ensureAlpha(0.5).webp(),
        (s: Sharp) => s.greyscale().png({ progressive: true }),
        (s: Sharp) => s.png({ palette: true }),
        (s: Sharp) => s.toColourspace("rgb16").png(),
        (s: Sharp) => s.toColourspace("cmyk").jpeg(),
      ]) {
        const bytes = await encode(photo.clone().withMetadata({ orientation, icc: "p3" })).toBuffer();
        const header = readImageHeader(bytes, { maxPixels: LIMIT, whole: true });
        expect({ ...header } as Record<string, unknown>).toEqual(await sharpAnswer(bytes));
        // Upright as decoded.
        const swapped = orientation >= 5;
        expect(await inspectImage(bytes, LIMIT)).toMatchObject({ width: swapped ? header.height : header.width, height: swapped ? header.width : header.height });
      }
    }
  });
});

describe("metadata is bounded before libvips sees it", () => {
  const LIMITS = { maxPixels: LIMIT, whole: true };

  test("the zTXt bomb is refused after inflating at most the per-item allowance, in milliseconds", async () => {
    const bomb = hostile.pngTextBomb();
    expect(bomb.byteLength).toBeLessThan(1_100_000);
    const started = performance.now();
    expect(await refusal(() => readImageHeader(bomb, LIMITS))).toBe("metadata_too_large");
    expect(performance.now() - started).toBeLessThan(500);
    expect(await refusal(() => decodeImage(bomb, LIMIT))).toBe("metadata_too_large");
    // The web role's look at the first 64 KiB is enough.
    expect(await refusal(() => inspectImage(bomb.subarray(0, 65536), LIMIT))).toBe("metadata_too_large");
  });

  test("small compressed text passes; many small chunks are refused by count, big ones by total", async () => {
    expect(readImageHeader(hostile.pngTextBomb(2, 100_000), LIMITS).width).toBe(1);
    expect(await refusal(() => readImageHeader(hostile.pngTextBomb(METADATA_LIMITS.items + 1, 10), LIMITS))).toBe("metadata_too_large");
    expect(await refusal(() => readImageHeader(hostile.pngTextBomb(5, 1_000_000), LIMITS))).toBe("metadata_too_large");
    const text = (bytes: number) => hostile.pngChunk("tEXt", Buffer.concat([Buffer.from("Comment\0"), Buffer.alloc(bytes, 0x41)]));
    expect(await refusal(() => readImageHeader(hostile.pngWith([text(METADATA_LIMITS.itemBytes + 1)]), LIMITS))).toBe("metadata_too_large");
    // Metadata after the pixel data is walked too, in a whole file.
    const late = hostile.pngWith([]);
    const withLateBomb = Buffer.concat([late.subarray(0, late.length - 12), ...Array.from({ length: 5 }, () => text(1_000_000)), late.subarray(late.length - 12)]);
    expect(await refusal(() => decodeImage(withLateBomb, LIMIT))).toBe("metadata_too_large");
  });

  test("JPEG APPn/COM segments by count and total; WebP EXIF, XMP and ICCP chunks by size", async () => {
    expect(readImageHeader(await hostile.jpegWithComments(10), LIMITS).width).toBe(32);
    expect(await refusal(async () => readImageHeader(await hostile.jpegWithComments(METADATA_LIMITS.items + 1, 100), LIMITS))).toBe("metadata_too_large");
    for (const type of ["EXIF", "XMP ", "ICCP"] as const) {
      expect(readImageHeader(await hostile.webpWithChunk(type, 1000), LIMITS).width).toBe(16);
      expect(await refusal(async () => readImageHeader(await hostile.webpWithChunk(type, METADATA_LIMITS.itemBytes + 2), LIMITS))).toBe("metadata_too_large");
    }
  });

  test(`chunk floods: a WebP of more than ${MAX_CHUNKS} chunks, a PNG of more than ${MAX_CHUNKS} other than IDAT; IDAT split in many passes`, async () => {
    // VP8X, the frame and an empty EXIF: three chunks before the flood.
    expect(readImageHeader(await hostile.webpWithEmptyChunks(MAX_CHUNKS - 3), LIMITS).width).toBe(16);
    expect(await refusal(async () => readImageHeader(await hostile.webpWithEmptyChunks(MAX_CHUNKS - 2), LIMITS))).toBe("metadata_too_large");
    // IHDR, IDAT and IEND: two counted.
    expect(readImageHeader(hostile.pngWithEmptyChunks(MAX_CHUNKS - 2), LIMITS).width).toBe(1);
    expect(await refusal(() => readImageHeader(hostile.pngWithEmptyChunks(MAX_CHUNKS - 1), LIMITS))).toBe("metadata_too_large");
    // 400x400 grey pixels, stored (not compressed), in IDAT chunks of 64 bytes: 2,500 of them.
    const plain = hostile.pngWith([], 400, 400);
    const pixels = deflateSync(Buffer.alloc(401 * 400), { level: 0 });
    const split = Array.from({ length: Math.ceil(pixels.length / 64) }, (_, index) => hostile.pngChunk("IDAT", pixels.subarray(index * 64, index * 64 + 64)));
    expect(split.length).toBeGreaterThan(MAX_CHUNKS);
    const signatureAndHeader = plain.subarray(0, 33);
    const many = Buffer.concat([signatureAndHeader, ...split, plain.subarray(plain.length - 12)]);
    expect((await decodeImage(many, LIMIT)).width).toBe(400);
  });

  test(`a JPEG of more than ${MAX_JPEG_SCANS} scans is refused before decoding; one of 10 passes`, async () => {
    expect(await refusal(async () => decodeImage(await hostile.jpegWithScans(MAX_JPEG_SCANS + 1), LIMIT))).toBe("too_many_scans");
    expect(await refusal(async () => inspectImage(await hostile.jpegWithScans(1000), LIMIT))).toBe("too_many_scans");
    expect(readImageHeader(await hostile.plainJpeg(true), LIMITS).width).toBe(32);
  });
});

describe("every hostile image is refused by the decode with its code (tests/support/hostile-images.ts)", () => {
  for (const image of hostile.HOSTILE_IMAGES) {
    test(`${image.name}: ${image.refusal}`, async () => {
      expect(await refusal(async () => decodeImage(await image.make(), LIMIT))).toBe(image.refusal);
    });
  }
});

describe("the walk is bounded on broken input", () => {
  test("lengths past the end, zero-length chunks, marker soup: an ImageError or an answer, never a throw of another kind, in linear time", async () => {
    const photo = await Bun.file(queryPhotos()[0]!.file).bytes();
    const png = await sharp(photo).png().toBuffer();
    const webp = await sharp(photo).webp().toBuffer();
    let seed = 1;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (const original of [photo, png, webp]) {
      for (let round = 0; round < 300; round++) {
        const bytes = Buffer.from(original.subarray(0, Math.floor(original.length * (0.2 + random() * 0.8))));
        for (let flips = 0; flips < 4; flips++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
        for (const whole of [true, false]) {
          try {
            readImageHeader(bytes, { maxPixels: LIMIT, whole });
          } catch (error) {
            expect(error).toBeInstanceOf(ImageError);
          }
        }
      }
    }
    const soup = Buffer.alloc(10 * 1024 * 1024, 0xff);
    soup.set([0xff, 0xd8, 0xff], 0);
    const started = performance.now();
    expect(await refusal(() => readImageHeader(soup, { maxPixels: LIMIT, whole: true }))).toBe("truncated");
    const scans = Buffer.concat([(await hostile.plainJpeg()).subarray(0, -2), Buffer.alloc(10 * 1024 * 1024, 0)]);
    expect(readImageHeader(scans, { maxPixels: LIMIT, whole: true }).width).toBe(32);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
