import { describe, expect, test } from "bun:test";
import sharp, { type Sharp } from "sharp";
import { deflateSync } from "node:zlib";
import { decodeImage, inspectImage } from "../../model/decode.ts";
import { ImageError, type ImageErrorCode } from "../../model/types.ts";
import { queryPhotos } from "../support/fixtures.ts";
import { pngChunk } from "../support/hostile-images.ts";

const LIMIT = 40_000_000;

/** A 40x20 image, red on the left half and blue on the right. */
async function halves(): Promise<Sharp> {
  const data = Buffer.alloc(40 * 20 * 3);
  for (let i = 0; i < 40 * 20; i++) data.set((i % 40) < 20 ? [255, 0, 0] : [0, 0, 255], i * 3);
  return sharp(data, { raw: { width: 40, height: 20, channels: 3 } });
}

/** A small, well-formed PNG whose header claims a huge RGB image: a decompression bomb. */
function pngClaiming(width: number, height: number): Uint8Array {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", header),
    pngChunk("IDAT", deflateSync(Buffer.alloc(100_000))),
    pngChunk("IEND", new Uint8Array(0)),
  ]);
}

async function refusal(promise: Promise<unknown>): Promise<ImageErrorCode> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ImageError) return error.code;
    throw error;
  }
  throw new Error("the image was accepted");
}

describe("refusals, each with its code, from decode and inspect alike (inspect: truncation inside the header only)", () => {
  const cases: [string, () => Promise<Uint8Array>, ImageErrorCode][] = [
    ["no bytes", async () => new Uint8Array(0), "empty"],
    ["text", async () => new TextEncoder().encode("name,person\ntest_00,Paul\n"), "not_an_image"],
    ["a GIF", async () => (await halves()).gif().toBuffer(), "unsupported_format"],
    ["a JPEG cut inside its header", async () => (await (await halves()).jpeg().toBuffer()).subarray(0, 100), "truncated"],
    ["a PNG cut inside its header", async () => (await (await halves()).png().toBuffer()).subarray(0, 20), "truncated"],
    ["a PNG header claiming 100000 x 100000 pixels", async () => pngClaiming(100_000, 100_000), "too_many_pixels"],
  ];
  for (const [name, bytes, code] of cases) {
    test(name, async () => {
      const input = await bytes();
      expect(await refusal(decodeImage(input, LIMIT))).toBe(code);
      expect(await refusal(inspectImage(input, LIMIT))).toBe(code);
    });
  }

  test("a corrupt image: the answer's message is fixed, libvips' own text is only the error's detail (for the log)", async () => {
    const header = Buffer.alloc(13);
    header.writeUInt32BE(40, 0);
    header.writeUInt32BE(20, 4);
    header.set([8, 2, 0, 0, 0], 8);
    const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const png = Buffer.concat([signature, pngChunk("IHDR", header), pngChunk("IDAT", new Uint8Array(64).fill(0x5a)), pngChunk("IEND", new Uint8Array(0))]);
    const error = await decodeImage(png, LIMIT).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    if (!(error instanceof ImageError)) throw new Error(`expected an ImageError, got ${String(error)}`);
    expect(error.detail).toMatch(/png/i);
    expect(error.message).not.toMatch(/vips|png|\(/i);
  });

  test("a file cut in its pixel data: decode refuses it as truncated; inspect, which reads the header only, does not", async () => {
    const noise = sharp(Buffer.from(crypto.getRandomValues(new Uint8Array(128 * 96 * 3))), { raw: { width: 128, height: 96, channels: 3 } });
    for (const encoded of [await noise.clone().jpeg().toBuffer(), await noise.clone().png().toBuffer()]) {
      const cut = encoded.subarray(0, Math.floor(encoded.length * 0.7));
      expect(await refusal(decodeImage(cut, LIMIT))).toBe("truncated");
      expect(await inspectImage(cut, LIMIT)).toEqual({ format: expect.any(String), width: 128, height: 96 });
      // Its first KiB (of several) is header enough.
      expect(encoded.length).toBeGreaterThan(4096);
      expect((await inspectImage(encoded.subarray(0, 1024), LIMIT)).width).toBe(128);
    }
  });

  test("the pixel limit is the configured one", async () => {
    const png = await (await halves()).png().toBuffer();
    expect(await refusal(decodeImage(png, 799))).toBe("too_many_pixels");
    expect((await decodeImage(png, 800)).width).toBe(40);
  });
});

describe("decoding", () => {
  test("JPEG, PNG and WebP decode to RGB with the right pixels", async () => {
    for (const encode of [(s: Sharp) => s.jpeg({ quality: 95 }), (s: Sharp) => s.png(), (s: Sharp) => s.webp({ lossless: true })]) {
      const bytes = await encode(await halves()).toBuffer();
      const image = await decodeImage(bytes, LIMIT);
      expect([image.width, image.height, image.data.length]).toEqual([40, 20, 40 * 20 * 3]);
      const left = [...image.data.subarray((10 * 40 + 5) * 3, (10 * 40 + 5) * 3 + 3)];
      const right = [...image.data.subarray((10 * 40 + 35) * 3, (10 * 40 + 35) * 3 + 3)];
      expect(left[0]).toBeGreaterThan(240);
      expect(left[2]).toBeLessThan(15);
      expect(right[2]).toBeGreaterThan(240);
      expect(right[0]).toBeLessThan(15);
    }
  });

  test("alpha is dropped and greyscale becomes three channels", async () => {
    const rgba = await (await halves()).ensureAlpha(0.5).png().toBuffer();
    expect((await decodeImage(rgba, LIMIT)).data.length).toBe(40 * 20 * 3);
    const grey = await (await halves()).greyscale().jpeg().toBuffer();
    const image = await decodeImage(grey, LIMIT);
    expect(image.data.length).toBe(40 * 20 * 3);
    expect(image.data[0]).toBe(image.data[1]!);
  });

  test("EXIF orientation is applied: orientation 6 turns the image a quarter clockwise", async () => {
    const bytes = await (await halves()).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const image = await decodeImage(bytes, LIMIT);
    expect([image.width, image.height]).toEqual([20, 40]);
    // Rotated clockwise, the red left half is now on top.
    expect(image.data[(5 * 20 + 10) * 3]).toBeGreaterThan(240);
    expect(image.data[(35 * 20 + 10) * 3 + 2]).toBeGreaterThan(240);
    expect(await inspectImage(bytes, LIMIT)).toEqual({ format: "jpeg", width: 20, height: 40 });
  });

  test("inspectImage reports format and size of a real photo quickly", async () => {
    const bytes = await Bun.file(queryPhotos()[0]!.file).bytes();
    const started = performance.now();
    expect(await inspectImage(bytes, LIMIT)).toEqual({ format: "jpeg", width: 139, height: 208 });
    expect(performance.now() - started).toBeLessThan(200);
  });
});
