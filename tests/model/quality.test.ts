// Face quality from the aligned crop: a sharp crop reads sharper than its blurred copy, brightness follows the pixels,
// size is the box's shorter side.
import { expect, test } from "bun:test";
import sharp, { type Sharp } from "sharp";
import { faceQuality } from "../../model/quality.ts";
import type { RgbImage } from "../../model/types.ts";

async function rgb(image: Sharp): Promise<RgbImage> {
  const { data, info } = await image.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

const box = { x: 0, y: 0, width: 150, height: 120 };
/** A 150x150 checkerboard of 10 px squares: plenty of edges. */
const checkerboard = () => {
  const data = new Uint8Array(150 * 150 * 3);
  for (let y = 0; y < 150; y++) for (let x = 0; x < 150; x++) data.fill((Math.floor(x / 10) + Math.floor(y / 10)) % 2 ? 230 : 25, (y * 150 + x) * 3, (y * 150 + x) * 3 + 3);
  return sharp(data, { raw: { width: 150, height: 150, channels: 3 } });
};

test("a sharp crop reads sharper than the same crop blurred, and both lie in 0..1", async () => {
  const sharpCrop = faceQuality(await rgb(checkerboard()), box);
  const blurred = faceQuality(await rgb(checkerboard().blur(4)), box);
  expect(sharpCrop.sharpness).toBeGreaterThan(0.9);
  expect(blurred.sharpness).toBeLessThan(sharpCrop.sharpness);
  expect(blurred.sharpness).toBeGreaterThanOrEqual(0);
});

test("brightness is the mean luma in 0..1; size is the box's shorter side; a flat crop has no sharpness", async () => {
  const grey = faceQuality(await rgb(sharp({ create: { width: 150, height: 150, channels: 3, background: { r: 51, g: 51, b: 51 } } })), box);
  expect(grey.brightness).toBeCloseTo(0.2, 2);
  expect(grey.sharpness).toBe(0);
  expect(grey.size).toBe(120);
});
