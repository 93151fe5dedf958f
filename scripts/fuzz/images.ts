/**
 * Hostile images for the fuzzer: valid JPEG, PNG and WebP seeds (the sample set's photos, converted with sharp once)
 * and mutations that know each container (JPEG segments, PNG chunks, RIFF chunks) besides blind ones (bit flips,
 * truncation, duplicated ranges). Every choice comes from the caller's Prng; sizes are bounded by `ImageLimits`: no
 * file past `maxFileBytes`, no metadata that inflates past `bombBytes` in all.
 */
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { bytesOf, concatBytes } from "./bytes.ts";
import type { Prng } from "./prng.ts";

export type ImageFormat = "jpeg" | "png" | "webp";

export interface Seed {
  name: string;
  format: ImageFormat;
  bytes: Uint8Array;
  width: number;
  height: number;
  /** A progressive JPEG (its scans can be repeated). */
  progressive?: boolean;
}

export interface ImageLimits {
  /** No mutated file is larger (kept under the service's file limit, so the file is parsed rather than refused whole). */
  maxFileBytes: number;
  /** What the compressed metadata of one file inflates to, all its chunks together. */
  bombBytes: number;
  /** Most scans in a repeated-scans JPEG. */
  maxScans: number;
}

export interface Mutation {
  name: string;
  /** The formats it understands; undefined: any bytes. */
  format?: ImageFormat;
  /** Only for progressive JPEG seeds. */
  progressiveOnly?: boolean;
  apply(seed: Seed, rng: Prng, limits: ImageLimits): Uint8Array;
}

/** Each photo as JPEG, PNG and WebP, plus two progressive JPEGs (a photo, and a large flat image whose scans are tiny). */
export async function makeSeeds(photos: string[]): Promise<Seed[]> {
  const seeds: Seed[] = [];
  for (const photo of photos) {
    const name = photo.split("/").pop()!.replace(/\.[^.]*$/, "");
    const source = sharp(photo);
    const { width, height } = await source.metadata();
    const dims = { width: width!, height: height! };
    seeds.push({ name, format: "jpeg", bytes: new Uint8Array(await Bun.file(photo).bytes()), ...dims });
    seeds.push({ name, format: "png", bytes: new Uint8Array(await sharp(photo).png().toBuffer()), ...dims });
    seeds.push({ name, format: "webp", bytes: new Uint8Array(await sharp(photo).webp().toBuffer()), ...dims });
    if (seeds.length === 3) seeds.push({ name: `${name}-progressive`, format: "jpeg", bytes: new Uint8Array(await sharp(photo).jpeg({ progressive: true }).toBuffer()), ...dims, progressive: true });
  }
  // 2000 x 2000 of one grey: each progressive AC scan is a few end-of-band runs, so thousands of them fit in a small
  // file while each one makes the decoder walk all 190,000 blocks.
  const flat = await sharp({ create: { width: 2000, height: 2000, channels: 3, background: { r: 128, g: 120, b: 110 } } })
    .jpeg({ progressive: true, quality: 90 })
    .toBuffer();
  seeds.push({ name: "flat-progressive", format: "jpeg", bytes: new Uint8Array(flat), width: 2000, height: 2000, progressive: true });
  return seeds;
}

const be16 = (value: number) => new Uint8Array([(value >> 8) & 0xff, value & 0xff]);
const be32 = (value: number) => new Uint8Array([(value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]);
const le32 = (value: number) => new Uint8Array([value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff]);
const le24 = (value: number) => new Uint8Array([value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff]);

/** Length fields at the ends of their range, and just inside. */
const EXTREME_16 = [0, 1, 2, 3, 0x7fff, 0x8000, 0xfffe, 0xffff];
const EXTREME_32 = [0, 1, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff];

/** At most `wanted` copies of `size` bytes, and no more than fit in the room left under the file limit (at least one). */
const copiesWithin = (wanted: number, size: number, seed: Seed, limits: ImageLimits) => Math.max(1, Math.min(wanted, Math.floor((limits.maxFileBytes - seed.bytes.length) / Math.max(1, size))));

/** Zeros of `bytes` length as one zlib stream, made once per size (zeros inflate about a thousandfold). */
const zlibZeros = new Map<number, Uint8Array>();
function compressedZeros(bytes: number): Uint8Array {
  let stream = zlibZeros.get(bytes);
  if (!stream) {
    stream = new Uint8Array(deflateSync(new Uint8Array(bytes), { level: 9 }));
    zlibZeros.set(bytes, stream);
  }
  return stream;
}

// ---------------------------------------------------------------- JPEG: segments up to the first scan, then scans.

interface JpegSegment {
  marker: number;
  body: Uint8Array;
  /** Written instead of the true length. */
  length?: number;
}

interface Jpeg {
  segments: JpegSegment[];
  /** From the first SOS marker to the end: scans, the markers between them, EOI. */
  tail: Uint8Array;
}

const SOS = 0xda;
const isSof = (marker: number) => marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;

function parseJpeg(bytes: Uint8Array): Jpeg {
  const segments: JpegSegment[] = [];
  let at = 2;
  while (at + 4 <= bytes.length && bytes[at] === 0xff) {
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at++;
      continue;
    }
    if (marker === SOS) break;
    if ((marker >= 0xd0 && marker <= 0xd9) || marker === 0x01) {
      segments.push({ marker, body: new Uint8Array(0) });
      at += 2;
      continue;
    }
    const length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
    segments.push({ marker, body: bytes.slice(at + 4, at + 2 + length) });
    at += 2 + length;
  }
  return { segments, tail: bytes.slice(at) };
}

function writeJpeg({ segments, tail }: Jpeg): Uint8Array {
  const parts: Uint8Array[] = [new Uint8Array([0xff, 0xd8])];
  for (const segment of segments) {
    if (segment.body.length === 0 && segment.length === undefined) parts.push(new Uint8Array([0xff, segment.marker]));
    else parts.push(new Uint8Array([0xff, segment.marker]), be16(segment.length ?? Math.min(0xffff, segment.body.length + 2)), segment.body.subarray(0, 0xfffd));
  }
  parts.push(tail);
  return concatBytes(parts);
}

/** The tail cut at each marker that starts a segment (not stuffing, restart markers or fill). */
function jpegTailPieces(tail: Uint8Array): Uint8Array[] {
  const starts: number[] = [];
  for (let i = 0; i + 1 < tail.length; i++) {
    if (tail[i] !== 0xff) continue;
    const next = tail[i + 1]!;
    if (next === 0x00 || next === 0xff || (next >= 0xd0 && next <= 0xd7)) continue;
    starts.push(i);
  }
  return starts.map((start, index) => tail.subarray(start, starts[index + 1] ?? tail.length));
}

function withJpeg(seed: Seed, change: (jpeg: Jpeg) => void): Uint8Array {
  const jpeg = parseJpeg(seed.bytes);
  change(jpeg);
  return writeJpeg(jpeg);
}

const jpegMutations: Mutation[] = [
  {
    name: "jpeg-many-app-segments",
    format: "jpeg",
    apply: (seed, rng, limits) =>
      withJpeg(seed, (jpeg) => {
        const size = rng.pick([16, 256, 4096, 65533]);
        const count = copiesWithin(rng.between(100, 20_000), size + 4, seed, limits);
        const body = rng.bytes(size);
        const added = Array.from({ length: count }, () => ({ marker: rng.pick([0xe0, 0xe1, 0xe2, 0xed, 0xee, 0xef, 0xfe]), body }));
        jpeg.segments.splice(rng.int(jpeg.segments.length + 1), 0, ...added);
      }),
  },
  {
    name: "jpeg-segment-length-extreme",
    format: "jpeg",
    apply: (seed, rng) =>
      withJpeg(seed, (jpeg) => {
        const segment = rng.pick(jpeg.segments);
        segment.length = rng.pick(EXTREME_16);
      }),
  },
  {
    name: "jpeg-huge-dimensions",
    format: "jpeg",
    apply: (seed, rng) =>
      withJpeg(seed, (jpeg) => {
        for (const sof of jpeg.segments.filter((segment) => isSof(segment.marker))) {
          sof.body.set(be16(rng.pick([0, 1, 0xffff, 20_000, 0x7fff])), 1);
          sof.body.set(be16(rng.pick([0, 1, 0xffff, 20_000, 0x7fff])), 3);
        }
      }),
  },
  {
    name: "jpeg-12-bit",
    format: "jpeg",
    apply: (seed, rng) =>
      withJpeg(seed, (jpeg) => {
        for (const sof of jpeg.segments.filter((segment) => isSof(segment.marker))) {
          sof.body[0] = rng.pick([12, 16, 0, 255]);
          if (rng.chance(0.5)) sof.marker = rng.pick([0xc1, 0xc3, 0xc5, 0xcb]);
        }
      }),
  },
  {
    name: "jpeg-undefined-huffman-tables",
    format: "jpeg",
    apply: (seed, rng) =>
      withJpeg(seed, (jpeg) => {
        if (rng.chance(0.5)) jpeg.segments = jpeg.segments.filter((segment) => segment.marker !== 0xc4);
        else for (const dht of jpeg.segments.filter((segment) => segment.marker === 0xc4)) dht.body[0] = (dht.body[0]! & 0xf0) | 3;
      }),
  },
  {
    name: "jpeg-undefined-quant-tables",
    format: "jpeg",
    apply: (seed, rng) =>
      withJpeg(seed, (jpeg) => {
        if (rng.chance(0.5)) jpeg.segments = jpeg.segments.filter((segment) => segment.marker !== 0xdb);
        else for (const sof of jpeg.segments.filter((segment) => isSof(segment.marker))) for (let c = 0; c < sof.body[5]!; c++) sof.body[6 + c * 3 + 2] = 3;
      }),
  },
  {
    name: "jpeg-duplicate-segment",
    format: "jpeg",
    apply: (seed, rng, limits) =>
      withJpeg(seed, (jpeg) => {
        const segment = rng.pick(jpeg.segments);
        const copies = copiesWithin(rng.pick([1, 2, 50, 1000]), segment.body.length + 4, seed, limits);
        jpeg.segments.splice(rng.int(jpeg.segments.length + 1), 0, ...Array.from({ length: copies }, () => ({ ...segment })));
      }),
  },
  {
    name: "jpeg-thousands-of-scans",
    format: "jpeg",
    progressiveOnly: true,
    apply: (seed, rng, limits) =>
      withJpeg(seed, (jpeg) => {
        const pieces = jpegTailPieces(jpeg.tail);
        const scans = pieces.filter((piece) => piece[1] === SOS);
        const later = rng.chance(0.5) ? scans.slice(-1) : scans.slice(1);
        const repeated = later.length > 0 ? later : scans;
        if (repeated.length === 0) return;
        const perRound = repeated.reduce((sum, piece) => sum + piece.length, 0);
        const rounds = Math.max(1, Math.min(Math.floor(limits.maxScans / repeated.length), Math.floor((limits.maxFileBytes - seed.bytes.length) / perRound)));
        jpeg.tail = concatBytes([...pieces.filter((piece) => piece[1] !== 0xd9), ...Array.from({ length: rounds }, () => repeated).flat(), new Uint8Array([0xff, 0xd9])]);
      }),
  },
];

// ---------------------------------------------------------------- PNG: chunks with their CRCs.

interface PngChunk {
  type: string;
  data: Uint8Array;
  length?: number;
  crc?: number;
}

const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function parsePng(bytes: Uint8Array): PngChunk[] {
  const chunks: PngChunk[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 8; at + 12 <= bytes.length; ) {
    const length = view.getUint32(at);
    chunks.push({ type: new TextDecoder().decode(bytes.subarray(at + 4, at + 8)), data: bytes.slice(at + 8, at + 8 + length) });
    at += 12 + length;
  }
  return chunks;
}

function writePng(chunks: PngChunk[]): Uint8Array {
  const parts: Uint8Array[] = [PNG_SIGNATURE];
  for (const chunk of chunks) {
    const typed = concatBytes([bytesOf(chunk.type), chunk.data]);
    parts.push(be32(chunk.length ?? chunk.data.length), typed, be32(chunk.crc ?? Bun.hash.crc32(typed)));
  }
  return concatBytes(parts);
}

function withPng(seed: Seed, change: (chunks: PngChunk[]) => void): Uint8Array {
  const chunks = parsePng(seed.bytes);
  change(chunks);
  return writePng(chunks);
}

/** Inserts metadata chunks just after IHDR (read before any pixel) or just before IEND (read after the pixels). */
function insertMetadata(chunks: PngChunk[], added: PngChunk[], rng: Prng): void {
  const end = chunks.findIndex((chunk) => chunk.type === "IEND");
  chunks.splice(rng.chance(0.5) || end < 0 ? 1 : end, 0, ...added);
}

/** Chunk sizes of inflated zeros for a bomb, each chunk at least 1 MB, all together at most `bombBytes`. */
function bombChunkSizes(rng: Prng, bombBytes: number): number[] {
  const size = Math.min(bombBytes, rng.pick([1, 4, 16, 50]) * 1_000_000);
  const count = Math.max(1, rng.between(Math.ceil(Math.floor(bombBytes / size) / 2), Math.floor(bombBytes / size)));
  return Array.from({ length: count }, () => size);
}

const pngMutations: Mutation[] = [
  {
    name: "png-ztxt-bomb",
    format: "png",
    apply: (seed, rng, limits) =>
      withPng(seed, (chunks) =>
        insertMetadata(
          chunks,
          bombChunkSizes(rng, limits.bombBytes).map((size, index) => ({ type: "zTXt", data: concatBytes([bytesOf(`Comment${index}`), new Uint8Array([0, 0]), compressedZeros(size)]) })),
          rng,
        ),
      ),
  },
  {
    name: "png-itxt-iccp-bomb",
    format: "png",
    apply: (seed, rng, limits) =>
      withPng(seed, (chunks) => {
        const [first, ...rest] = bombChunkSizes(rng, limits.bombBytes);
        insertMetadata(
          chunks,
          [
            { type: "iCCP", data: concatBytes([bytesOf("icc"), new Uint8Array([0, 0]), compressedZeros(first!)]) },
            ...rest.map((size) => ({ type: "iTXt", data: concatBytes([bytesOf("XML:com.adobe.xmp"), new Uint8Array([0, 1, 0, 0, 0]), compressedZeros(size)]) })),
          ],
          rng,
        );
      }),
  },
  {
    name: "png-many-text-chunks",
    format: "png",
    apply: (seed, rng, limits) =>
      withPng(seed, (chunks) => {
        const size = rng.pick([8, 1000, 100_000]);
        const count = copiesWithin(rng.between(1000, 100_000), size + 14, seed, limits);
        const data = concatBytes([bytesOf("k"), new Uint8Array([0]), rng.bytes(size)]);
        insertMetadata(chunks, Array.from({ length: count }, () => ({ type: "tEXt", data })), rng);
      }),
  },
  {
    name: "png-huge-dimensions",
    format: "png",
    apply: (seed, rng) =>
      withPng(seed, (chunks) => {
        const ihdr = chunks[0]!;
        ihdr.data.set(be32(rng.pick([0, 1, 100_000, 0x7fffffff, 0xffffffff])), 0);
        ihdr.data.set(be32(rng.pick([0, 1, 100_000, 0x7fffffff, 0xffffffff])), 4);
      }),
  },
  {
    name: "png-large-flat-image",
    format: "png",
    // Within the pixel cap, and inflating to what the bomb bound allows: a decoder must hold it all.
    apply: (_seed, rng, limits) => {
      const side = Math.min(6000, Math.floor(Math.sqrt(limits.bombBytes / 3)));
      const ihdr = concatBytes([be32(side), be32(side), new Uint8Array([8, 2, 0, 0, 0])]);
      const chunks: PngChunk[] = [{ type: "IHDR", data: ihdr }, { type: "IDAT", data: compressedZeros(side * (side * 3 + 1)) }, { type: "IEND", data: new Uint8Array(0) }];
      if (rng.chance(0.5)) chunks.splice(2, 1); // no IEND
      return writePng(chunks);
    },
  },
  {
    name: "png-length-extreme",
    format: "png",
    apply: (seed, rng) =>
      withPng(seed, (chunks) => {
        rng.pick(chunks).length = rng.pick(EXTREME_32);
      }),
  },
  {
    name: "png-bad-crc",
    format: "png",
    apply: (seed, rng) =>
      withPng(seed, (chunks) => {
        rng.pick(chunks).crc = rng.int(2 ** 32);
      }),
  },
  {
    name: "png-bad-header-fields",
    format: "png",
    apply: (seed, rng) =>
      withPng(seed, (chunks) => {
        const ihdr = chunks[0]!;
        ihdr.data[8 + rng.int(5)] = rng.pick([0, 3, 5, 7, 9, 17, 255]);
      }),
  },
  {
    name: "png-duplicate-chunk",
    format: "png",
    apply: (seed, rng, limits) =>
      withPng(seed, (chunks) => {
        const chunk = rng.pick(chunks);
        const copies = copiesWithin(rng.pick([1, 2, 100, 5000]), chunk.data.length + 12, seed, limits);
        chunks.splice(rng.int(chunks.length + 1), 0, ...Array.from({ length: copies }, () => ({ ...chunk })));
      }),
  },
  {
    name: "png-reordered-chunks",
    format: "png",
    apply: (seed, rng) =>
      withPng(seed, (chunks) => {
        const [moved] = chunks.splice(rng.int(chunks.length), 1);
        chunks.splice(rng.int(chunks.length + 1), 0, moved!);
      }),
  },
];

// ---------------------------------------------------------------- WebP: RIFF chunks.

interface RiffChunk {
  fourcc: string;
  data: Uint8Array;
  size?: number;
}

interface Riff {
  chunks: RiffChunk[];
  size?: number;
}

function parseWebp(bytes: Uint8Array): Riff {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: RiffChunk[] = [];
  for (let at = 12; at + 8 <= bytes.length; ) {
    const size = view.getUint32(at + 4, true);
    chunks.push({ fourcc: new TextDecoder().decode(bytes.subarray(at, at + 4)), data: bytes.slice(at + 8, at + 8 + size) });
    at += 8 + size + (size & 1);
  }
  return { chunks };
}

function writeWebp({ chunks, size }: Riff): Uint8Array {
  const body: Uint8Array[] = [bytesOf("WEBP")];
  for (const chunk of chunks) {
    body.push(bytesOf(chunk.fourcc), le32(chunk.size ?? chunk.data.length), chunk.data);
    if (chunk.data.length & 1) body.push(new Uint8Array(1));
  }
  const payload = concatBytes(body);
  return concatBytes([bytesOf("RIFF"), le32(size ?? payload.length), payload]);
}

function withWebp(seed: Seed, change: (riff: Riff) => void): Uint8Array {
  const riff = parseWebp(seed.bytes);
  change(riff);
  return writeWebp(riff);
}

/** The extended header (VP8X) with `flags` added, made from the seed's size when the file is in the simple format. */
function extendedHeader(riff: Riff, seed: Seed, flags: number): RiffChunk {
  let vp8x = riff.chunks.find((chunk) => chunk.fourcc === "VP8X");
  if (!vp8x) {
    vp8x = { fourcc: "VP8X", data: concatBytes([new Uint8Array([0, 0, 0, 0]), le24(seed.width - 1), le24(seed.height - 1)]) };
    riff.chunks.unshift(vp8x);
  }
  vp8x.data[0] = vp8x.data[0]! | flags;
  return vp8x;
}

const EXIF_FLAG = 0x08;
const XMP_FLAG = 0x04;

const webpMutations: Mutation[] = [
  {
    name: "webp-huge-exif-xmp",
    format: "webp",
    apply: (seed, rng, limits) =>
      withWebp(seed, (riff) => {
        extendedHeader(riff, seed, EXIF_FLAG | XMP_FLAG);
        const room = limits.maxFileBytes - seed.bytes.length - 64;
        const exifSize = rng.between(1, Math.floor(room / 2));
        // A TIFF header whose first directory claims 65,535 entries, then noise.
        const exif = concatBytes([bytesOf("II*\0"), le32(8), new Uint8Array([0xff, 0xff]), rng.bytes(Math.min(exifSize, 4096))]);
        const padded = concatBytes([exif, new Uint8Array(Math.max(0, exifSize - exif.length)).fill(0x41)]);
        const xmp = concatBytes([bytesOf('<x:xmpmeta xmlns:x="adobe:ns:meta/">'), new Uint8Array(rng.between(1, Math.floor(room / 2))).fill(0x3c)]);
        riff.chunks.push({ fourcc: "EXIF", data: padded }, { fourcc: "XMP ", data: xmp });
        if (rng.chance(0.3)) riff.chunks.push({ fourcc: "EXIF", data: padded });
      }),
  },
  {
    name: "webp-size-extreme",
    format: "webp",
    apply: (seed, rng) =>
      withWebp(seed, (riff) => {
        if (rng.chance(0.4)) riff.size = rng.pick(EXTREME_32);
        else rng.pick(riff.chunks).size = rng.pick([...EXTREME_32, 1, 3]);
      }),
  },
  {
    name: "webp-huge-canvas",
    format: "webp",
    apply: (seed, rng) =>
      withWebp(seed, (riff) => {
        const vp8x = extendedHeader(riff, seed, 0);
        vp8x.data.set(le24(rng.pick([0, 0xffffff, 100_000])), 4);
        vp8x.data.set(le24(rng.pick([0, 0xffffff, 100_000])), 7);
      }),
  },
  {
    name: "webp-frame-dimensions",
    format: "webp",
    apply: (seed, rng) =>
      withWebp(seed, (riff) => {
        const frame = riff.chunks.find((chunk) => chunk.fourcc === "VP8 " || chunk.fourcc === "VP8L");
        if (!frame || frame.data.length < 10) return;
        if (frame.fourcc === "VP8 ") {
          frame.data.set(be16(rng.pick([0xff3f, 0x0000, 0x0100])).reverse(), 6);
          frame.data.set(be16(rng.pick([0xff3f, 0x0000, 0x0100])).reverse(), 8);
        } else frame.data.set(rng.bytes(4), 1);
      }),
  },
  {
    name: "webp-duplicate-chunk",
    format: "webp",
    apply: (seed, rng, limits) =>
      withWebp(seed, (riff) => {
        const chunk = rng.pick(riff.chunks);
        const copies = copiesWithin(rng.pick([1, 2, 100, 5000]), chunk.data.length + 8, seed, limits);
        riff.chunks.splice(rng.int(riff.chunks.length + 1), 0, ...Array.from({ length: copies }, () => ({ ...chunk })));
      }),
  },
  {
    name: "webp-many-unknown-chunks",
    format: "webp",
    apply: (seed, rng, limits) =>
      withWebp(seed, (riff) => {
        const size = rng.pick([0, 1, 100, 10_000]);
        const count = copiesWithin(rng.between(1000, 200_000), size + 9, seed, limits);
        const data = rng.bytes(size);
        riff.chunks.splice(rng.int(riff.chunks.length + 1), 0, ...Array.from({ length: count }, () => ({ fourcc: rng.pick(["ZZZZ", "ICCP", "ALPH", "ANMF"]), data })));
      }),
  },
];

// ---------------------------------------------------------------- Any bytes.

/** Offsets near the start (where the headers are) more often than elsewhere. */
const anyOffset = (rng: Prng, length: number) => (rng.chance(0.6) ? rng.int(Math.min(length, 2048)) : rng.int(length));

const blindMutations: Mutation[] = [
  {
    name: "bit-flips",
    apply: (seed, rng) => {
      const out = seed.bytes.slice();
      for (let flips = rng.between(1, 64); flips > 0; flips--) {
        const at = anyOffset(rng, out.length);
        out[at] = out[at]! ^ (1 << rng.int(8));
      }
      return out;
    },
  },
  {
    name: "extreme-bytes",
    apply: (seed, rng) => {
      const out = seed.bytes.slice();
      for (let writes = rng.between(1, 16); writes > 0; writes--) out[anyOffset(rng, out.length)] = rng.pick([0x00, 0xff, 0x7f, 0x80]);
      return out;
    },
  },
  {
    name: "truncation",
    apply: (seed, rng) => seed.bytes.slice(0, anyOffset(rng, seed.bytes.length)),
  },
  {
    name: "duplicated-range",
    apply: (seed, rng, limits) => {
      const start = anyOffset(rng, seed.bytes.length);
      const range = seed.bytes.subarray(start, Math.min(seed.bytes.length, start + rng.between(1, 65_536)));
      const copies = copiesWithin(rng.pick([1, 10, 1000]), range.length, seed, limits);
      const at = anyOffset(rng, seed.bytes.length);
      return concatBytes([seed.bytes.subarray(0, at), ...Array.from({ length: copies }, () => range), seed.bytes.subarray(at)]);
    },
  },
  {
    name: "inserted-noise",
    apply: (seed, rng) => {
      const at = anyOffset(rng, seed.bytes.length);
      return concatBytes([seed.bytes.subarray(0, at), rng.bytes(rng.between(1, 4096)), seed.bytes.subarray(at)]);
    },
  },
];

export const MUTATIONS: Mutation[] = [...jpegMutations, ...pngMutations, ...webpMutations, ...blindMutations];

/** One hostile image: a seed, a mutation that fits it (format-aware two times in three), sometimes a blind one on top. */
export function mutateImage(seeds: Seed[], rng: Prng, limits: ImageLimits): { bytes: Uint8Array; seed: Seed; mutations: string[] } {
  const seed = rng.pick(seeds);
  const aware = MUTATIONS.filter((mutation) => mutation.format === seed.format && (!mutation.progressiveOnly || seed.progressive));
  const first = rng.chance(0.67) && aware.length > 0 ? rng.pick(aware) : rng.pick(blindMutations);
  let bytes = first.apply(seed, rng, limits);
  const mutations = [first.name];
  if (rng.chance(0.2)) {
    const second = rng.pick(blindMutations);
    bytes = second.apply({ ...seed, bytes }, rng, limits);
    mutations.push(second.name);
  }
  return { bytes: bytes.length > limits.maxFileBytes ? bytes.subarray(0, limits.maxFileBytes) : bytes, seed, mutations };
}
