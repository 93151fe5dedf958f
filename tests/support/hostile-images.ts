/**
 * Hostile images for tests and fuzzers: metadata bombs, and files whose header is sound but whose data no decoder can
 * read. Each builder is deterministic and fast; the ones that start from a real image make it with sharp.
 */
import sharp from "sharp";
import { crc32, deflateSync } from "node:zlib";
import type { ImageErrorCode } from "../../model/types.ts";

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** One PNG chunk: length, type, data, CRC. */
export function pngChunk(type: string, data: Uint8Array): Buffer {
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write(type, 4, "latin1");
  chunk.set(data, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)) >>> 0, 8 + data.length);
  return chunk;
}

/** A PNG of `width` x `height` grey pixels with `extra` chunks placed before its IDAT. */
export function pngWith(extra: Uint8Array[], width = 1, height = 1): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 0, 0, 0, 0], 8);
  const rows = Buffer.alloc((width + 1) * height);
  return Buffer.concat([PNG_SIGNATURE, pngChunk("IHDR", header), ...extra, pngChunk("IDAT", deflateSync(rows)), pngChunk("IEND", new Uint8Array(0))]);
}

/**
 * The zTXt bomb: a valid 1x1 PNG with `chunks` compressed text chunks, each inflating to `inflatedBytes`. The default
 * (50 chunks of 20 MB) is under 1 MB on disk and took a web role that read it with sharp from 100 MB to 4.1 GB.
 */
export function pngTextBomb(chunks = 50, inflatedBytes = 20_000_000): Buffer {
  // keyword, NUL, compression method 0, zlib stream
  const data = Buffer.concat([Buffer.from("Comment\0\0", "latin1"), deflateSync(Buffer.alloc(inflatedBytes, 0x41), { level: 9 })]);
  const chunk = pngChunk("zTXt", data);
  return pngWith(Array.from({ length: chunks }, () => chunk));
}

/** An 84-byte lossy WebP: a sound RIFF header and VP8 frame header (16x16), then garbage where the partitions should be. */
export function webpWithGarbage(): Buffer {
  const vp8 = Buffer.alloc(64, 0xa5);
  // Frame tag: key frame, version 0, shown, first partition of 40 bytes (bits: 0 | 000 << 1 | 1 << 4 | 40 << 5).
  const tag = 0 | (0 << 1) | (1 << 4) | (40 << 5);
  vp8.writeUIntLE(tag, 0, 3);
  vp8.set([0x9d, 0x01, 0x2a], 3);
  vp8.writeUInt16LE(16, 6);
  vp8.writeUInt16LE(16, 8);
  const chunk = Buffer.concat([Buffer.from("VP8 ", "latin1"), u32le(vp8.length), vp8]);
  return Buffer.concat([Buffer.from("RIFF", "latin1"), u32le(4 + chunk.length), Buffer.from("WEBP", "latin1"), chunk]);
}

const u32le = (value: number) => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value, 0);
  return bytes;
};

/** A 32x32 JPEG of noise, baseline or progressive, as sharp writes it (one DQT, DHT, SOF, SOS each, or several). */
export async function plainJpeg(progressive = false, width = 32, height = 32): Promise<Buffer> {
  let seed = 7;
  const noise = Buffer.alloc(width * height * 3, 0).map(() => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 23);
  return sharp(noise, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90, progressive, mozjpeg: false, optimiseCoding: false }).toBuffer();
}

interface JpegSegment {
  marker: number;
  /** Offset of its 0xFF. */
  start: number;
  /** Offset of its payload (past the length). */
  payload: number;
  /** Offset past its payload; for an SOS, where its entropy-coded data starts. */
  end: number;
}

/** The marker segments of a well-formed JPEG (for editing test images; the service has its own bounded walk). */
export function jpegSegments(jpeg: Uint8Array): JpegSegment[] {
  const segments: JpegSegment[] = [];
  let offset = 2;
  while (offset + 4 <= jpeg.length) {
    if (jpeg[offset] !== 0xff) {
      offset++;
      continue;
    }
    const marker = jpeg[offset + 1]!;
    if (marker === 0xd9) break;
    if (marker === 0xff || marker === 0x00 || (marker >= 0xd0 && marker <= 0xd7)) {
      offset++;
      continue;
    }
    const length = (jpeg[offset + 2]! << 8) | jpeg[offset + 3]!;
    segments.push({ marker, start: offset, payload: offset + 4, end: offset + 2 + length });
    offset += 2 + length;
  }
  return segments;
}

const sofOf = (jpeg: Uint8Array) => jpegSegments(jpeg).find((s) => s.marker === 0xc0 || s.marker === 0xc2)!;

/** A JPEG whose first component names quantisation table 3, which no DQT defines. */
export async function jpegWithUndefinedQuantTable(): Promise<Buffer> {
  const jpeg = Buffer.from(await plainJpeg());
  const sof = sofOf(jpeg);
  // SOF payload: precision, height, width, count, then per component: id, sampling, table.
  jpeg[sof.payload + 6 + 2] = 3;
  return jpeg;
}

/** A JPEG whose scan names Huffman tables 3, which no DHT defines. */
export async function jpegWithUndefinedHuffmanTable(): Promise<Buffer> {
  const jpeg = Buffer.from(await plainJpeg());
  const sos = jpegSegments(jpeg).find((s) => s.marker === 0xda)!;
  // SOS payload: count, then per component: id, DC table << 4 | AC table.
  jpeg[sos.payload + 2] = 0x33;
  return jpeg;
}

/** A JPEG whose frame header says 12 bits per sample (SOF1), over 8-bit data. */
export async function jpeg12Bit(): Promise<Buffer> {
  const jpeg = Buffer.from(await plainJpeg());
  const sof = sofOf(jpeg);
  jpeg[sof.start + 1] = 0xc1;
  jpeg[sof.payload] = 12;
  return jpeg;
}

/** A progressive JPEG whose first scan, a DC scan, claims the AC coefficients too (Se = 63): an invalid progression. */
export async function jpegInconsistentProgression(): Promise<Buffer> {
  const jpeg = Buffer.from(await plainJpeg(true));
  const sos = jpegSegments(jpeg).find((s) => s.marker === 0xda)!;
  // SOS payload ends with Ss, Se, Ah << 4 | Al.
  jpeg[sos.end - 2] = 63;
  return jpeg;
}

/**
 * A progressive JPEG with its last scan repeated until it has `scans` scans: each repeat is one more pass over every
 * coefficient for the decoder (which only warns about the repeats).
 */
export async function jpegWithScans(scans: number, width = 32, height = 32): Promise<Buffer> {
  const jpeg = Buffer.from(await plainJpeg(true, width, height));
  const segments = jpegSegments(jpeg);
  const sosList = segments.filter((s) => s.marker === 0xda);
  const last = sosList.at(-1)!;
  const eoi = jpeg.length - 2;
  const lastScan = jpeg.subarray(last.start, eoi);
  const repeats = Array.from({ length: Math.max(0, scans - sosList.length) }, () => lastScan);
  return Buffer.concat([jpeg.subarray(0, eoi), ...repeats, jpeg.subarray(eoi)]);
}

/** A JPEG with `count` COM segments of `bytes` each before its frame header. */
export async function jpegWithComments(count: number, bytes = 60_000): Promise<Buffer> {
  const jpeg = await plainJpeg();
  const comment = Buffer.alloc(4 + bytes, 0x20);
  comment.set([0xff, 0xfe, (bytes + 2) >> 8, (bytes + 2) & 0xff], 0);
  return Buffer.concat([jpeg.subarray(0, 2), ...Array.from({ length: count }, () => comment), jpeg.subarray(2)]);
}

/** A WebP (extended format) with one `type` metadata chunk of `bytes` bytes. */
export async function webpWithChunk(type: "EXIF" | "XMP " | "ICCP", bytes: number): Promise<Buffer> {
  const simple = await sharp({ create: { width: 16, height: 16, channels: 3, background: "#808080" } }).webp().toBuffer();
  const image = simple.subarray(12);
  const flags = type === "EXIF" ? 0x08 : type === "XMP " ? 0x04 : 0x20;
  const vp8x = Buffer.alloc(10);
  vp8x[0] = flags;
  vp8x.writeUIntLE(15, 4, 3);
  vp8x.writeUIntLE(15, 7, 3);
  const metadata = Buffer.concat([Buffer.from(type, "latin1"), u32le(bytes), Buffer.alloc(bytes + (bytes & 1))]);
  const chunks = type === "ICCP"
    ? [Buffer.from("VP8X", "latin1"), u32le(10), vp8x, metadata, image]
    : [Buffer.from("VP8X", "latin1"), u32le(10), vp8x, image, metadata];
  const body = Buffer.concat(chunks);
  return Buffer.concat([Buffer.from("RIFF", "latin1"), u32le(4 + body.length), Buffer.from("WEBP", "latin1"), body]);
}

/** A 16x16 WebP (extended format) followed by `count` empty chunks of an unknown type: 8 bytes each. */
export async function webpWithEmptyChunks(count: number): Promise<Buffer> {
  const plain = await webpWithChunk("EXIF", 0);
  const flood = Buffer.alloc(8 * count);
  for (let index = 0; index < count; index++) flood.write("ZZZZ", index * 8, "latin1");
  const body = Buffer.concat([plain.subarray(12), flood]);
  return Buffer.concat([Buffer.from("RIFF", "latin1"), u32le(4 + body.length), Buffer.from("WEBP", "latin1"), body]);
}

/** A 1x1 PNG with `count` empty chunks of an unknown ancillary type before its IDAT. */
export function pngWithEmptyChunks(count: number): Buffer {
  return pngWith(Array.from({ length: count }, () => pngChunk("zzZz", new Uint8Array(0))));
}

export interface HostileImage {
  name: string;
  make(): Promise<Uint8Array> | Uint8Array;
  /** What the service answers it with, on the first try: the web role from its header, else the app's decode. */
  refusal: ImageErrorCode;
}

/** Every hostile image above with the refusal it gets (tests/model/image-header.test.ts checks each against decodeImage). */
export const HOSTILE_IMAGES: HostileImage[] = [
  { name: "a 1x1 PNG with 50 zTXt chunks of 20 MB each", make: () => pngTextBomb(), refusal: "metadata_too_large" },
  { name: "a PNG with 65 small zTXt chunks", make: () => pngTextBomb(65, 10), refusal: "metadata_too_large" },
  { name: "a JPEG with 65 comments", make: () => jpegWithComments(65, 100), refusal: "metadata_too_large" },
  { name: "a WebP with a 2 MB EXIF chunk", make: () => webpWithChunk("EXIF", 2 * 1024 * 1024), refusal: "metadata_too_large" },
  { name: "a WebP of 100,000 empty unknown chunks", make: () => webpWithEmptyChunks(100_000), refusal: "metadata_too_large" },
  { name: "a PNG of 100,000 empty unknown chunks", make: () => pngWithEmptyChunks(100_000), refusal: "metadata_too_large" },
  { name: "a progressive JPEG of 33 scans", make: () => jpegWithScans(33), refusal: "too_many_scans" },
  { name: "an 84-byte WebP with garbage after its header", make: webpWithGarbage, refusal: "undecodable" },
  { name: "a JPEG naming an undefined quantisation table", make: jpegWithUndefinedQuantTable, refusal: "undecodable" },
  { name: "a JPEG naming an undefined Huffman table", make: jpegWithUndefinedHuffmanTable, refusal: "undecodable" },
  { name: "a 12-bit JPEG", make: jpeg12Bit, refusal: "undecodable" },
  { name: "a progressive JPEG with an inconsistent scan sequence", make: jpegInconsistentProgression, refusal: "undecodable" },
];
