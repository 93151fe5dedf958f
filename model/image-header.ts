/**
 * Format, size and orientation of a JPEG, PNG or WebP read in plain TypeScript, with every piece of metadata that a
 * decoder would expand or copy bounded on the way. Untrusted bytes reach libvips only after this walk.
 *
 * The walk is one pass over the file's chunks (PNG), marker segments (JPEG) or RIFF chunks (WebP), each a length and
 * a type: it always moves forward, never trusts a length past the end of the bytes it has, and inflates compressed
 * PNG metadata only up to what is still allowed. `bytes` may be the start of a file (the web role reads the first KiB
 * of an upload): what lies past it is walked by the app's decode, which passes the whole file.
 */
import { inflateSync } from "node:zlib";
import { ImageError } from "./types.ts";

export type SupportedFormat = "jpeg" | "png" | "webp";

interface ImageHeader {
  format: SupportedFormat;
  /** As stored, before EXIF orientation. */
  width: number;
  height: number;
  /** EXIF orientation, 1 to 8 (1 when absent or unreadable). */
  orientation: number;
}

/**
 * Metadata that decoders copy or expand: PNG tEXt, zTXt, iTXt, iCCP, eXIf and sPLT chunks; JPEG APPn and COM
 * segments; WebP EXIF, XMP and ICCP chunks. Bytes are counted as the decoder would hold them: inflated for the PNG
 * chunks that are compressed.
 */
export const METADATA_LIMITS = {
  /** Metadata chunks or segments in one image. A photo has a handful; an ICC profile or extended XMP split over 64 KiB segments a few dozen. */
  items: 64,
  /** One item, inflated. */
  itemBytes: 1024 * 1024,
  /** All of an image's metadata, inflated. */
  totalBytes: 4 * 1024 * 1024,
};

/**
 * Scans (SOS markers) in one JPEG. Each scan of a progressive JPEG is a pass over every coefficient of the image, so
 * the count is the decoder's work per pixel: encoders write 10 or fewer (libjpeg's progressive script: 10 for colour,
 * 6 for grey), a baseline JPEG one per component at most.
 */
export const MAX_JPEG_SCANS = 32;

/**
 * Chunks in one WebP, and chunks other than IDAT in one PNG. A still photo has a handful (WebP: VP8X, ICCP, ALPH,
 * the frame, EXIF, XMP; PNG: IHDR, PLTE, a few ancillary ones, IEND); past this bound a file is a flood of tiny
 * chunks that each cost the walk and the decoder a step (a 10 MB WebP of 8-byte chunks is 1.3 million). IDAT is not
 * counted: encoders split the pixel data at a fixed size (libpng and sharp at 8 KiB, so a 10 MB PNG has 1,280 of
 * them), and libpng only feeds each one's bytes to zlib, as it would one big chunk's.
 */
export const MAX_CHUNKS = 1000;

interface HeaderOptions {
  maxPixels: number;
  /** `bytes` is the whole file (else its start): chunks cut off by its end are then a truncation, not the end of what was read. */
  whole: boolean;
}

/** Reads the header and walks the metadata; throws an ImageError for anything refused. */
export function readImageHeader(bytes: Uint8Array, options: HeaderOptions): ImageHeader {
  if (bytes.byteLength === 0) throw new ImageError("empty", "the image is empty");
  const walk = new Walk(bytes, options.whole);
  const header = startsWith(bytes, PNG_SIGNATURE)
    ? readPng(walk)
    : bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff
      ? readJpeg(walk)
      : ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP"
        ? readWebp(walk)
        : refuseUnknown(bytes);
  if (header.width === 0 || header.height === 0) throw new ImageError("not_an_image", "the image has no size");
  if (header.width * header.height > options.maxPixels) {
    throw new ImageError("too_many_pixels", `the image has ${header.width}x${header.height} pixels; the limit is ${options.maxPixels} pixels`);
  }
  return header;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const GIF_SIGNATURE = [0x47, 0x49, 0x46, 0x38];

function refuseUnknown(bytes: Uint8Array): never {
  if (bytes.byteLength < 12 && (PNG_SIGNATURE.slice(0, bytes.byteLength).every((b, i) => bytes[i] === b) || (bytes[0] === 0xff && bytes[1] === 0xd8))) {
    throw new ImageError("truncated", "the image ends inside its header");
  }
  if (startsWith(bytes, GIF_SIGNATURE) || ascii(bytes, 0, 2) === "BM" || ascii(bytes, 0, 4) === "II*\0" || ascii(bytes, 0, 4) === "MM\0*" || ascii(bytes, 4, 4) === "ftyp") {
    throw new ImageError("unsupported_format", "this image format is not supported; send JPEG, PNG or WebP");
  }
  throw new ImageError("not_an_image", "the bytes are not an image");
}

const startsWith = (bytes: Uint8Array, prefix: number[]) => prefix.every((byte, index) => bytes[index] === byte);
/** A plain loop: spreading a subarray into fromCharCode allocated a view and an arguments list per chunk walked. */
function ascii(bytes: Uint8Array, offset: number, length: number): string {
  if (offset + length > bytes.byteLength) return "";
  let text = "";
  for (let index = offset; index < offset + length; index++) text += String.fromCharCode(bytes[index]!);
  return text;
}

/** The bytes being walked and the metadata counted so far. */
class Walk {
  readonly data: DataView;
  items = 0;
  metadataBytes = 0;
  chunks = 0;

  constructor(
    readonly bytes: Uint8Array,
    readonly whole: boolean,
  ) {
    this.data = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.bytes.byteLength;
  }

  /** Counts one metadata item of `size` bytes (as the decoder would hold it) against the limits. */
  metadata(what: string, size: number): void {
    this.items++;
    this.metadataBytes += size;
    if (this.items > METADATA_LIMITS.items) throw tooMuchMetadata(`more than ${METADATA_LIMITS.items} metadata chunks or segments`);
    if (size > METADATA_LIMITS.itemBytes) throw tooMuchMetadata(`a ${what} of ${size} bytes (at most ${METADATA_LIMITS.itemBytes})`);
    if (this.metadataBytes > METADATA_LIMITS.totalBytes) throw tooMuchMetadata(`more than ${METADATA_LIMITS.totalBytes} bytes of metadata`);
  }

  /** Counts one chunk against MAX_CHUNKS. */
  chunk(format: string): void {
    if (++this.chunks > MAX_CHUNKS) throw tooMuchMetadata(`more than ${MAX_CHUNKS} ${format} chunks`);
  }

  /** What may still be inflated for one item: past it, the item is refused whatever its real size. */
  inflateAllowance(): number {
    return Math.min(METADATA_LIMITS.itemBytes, METADATA_LIMITS.totalBytes - this.metadataBytes) + 1;
  }

  /** The end of the bytes came before `what` ended: a truncation in a whole file, the end of the walk in a prefix. */
  cutShort(what: string): ImageError {
    return new ImageError("truncated", `the image ends inside its ${what}`);
  }
}

const tooMuchMetadata = (what: string) => new ImageError("metadata_too_large", `the image carries ${what}`);

// PNG: signature, then chunks of length (4, big-endian), type (4), data, CRC (4). IHDR first.
const PNG_METADATA = new Set(["tEXt", "zTXt", "iTXt", "iCCP", "eXIf", "sPLT"]);

function readPng(walk: Walk): ImageHeader {
  const { bytes, data } = walk;
  if (walk.length < 33) throw walk.cutShort("header");
  if (ascii(bytes, 12, 4) !== "IHDR") throw new ImageError("not_an_image", "the PNG does not start with its header chunk");
  const header: ImageHeader = { format: "png", width: data.getUint32(16), height: data.getUint32(20), orientation: 1 };
  let offset = 8;
  while (offset + 8 <= walk.length) {
    const length = data.getUint32(offset);
    const type = ascii(bytes, offset + 4, 4);
    if (type !== "IDAT") walk.chunk("PNG");
    const end = offset + 12 + length;
    if (end > walk.length) {
      if (walk.whole) throw walk.cutShort(`${type} chunk`);
      break;
    }
    if (PNG_METADATA.has(type)) {
      const body = bytes.subarray(offset + 8, offset + 8 + length);
      walk.metadata(`PNG ${type} chunk`, pngMetadataSize(walk, type, body));
      if (type === "eXIf" && header.orientation === 1) header.orientation = exifOrientation(body);
    }
    if (type === "IEND") break;
    offset = end;
  }
  return header;
}

/** A PNG metadata chunk's size as the decoder holds it: compressed ones inflated, at most up to what is still allowed. */
function pngMetadataSize(walk: Walk, type: string, body: Uint8Array): number {
  const keywordEnd = body.indexOf(0);
  let compressedFrom = -1;
  if ((type === "zTXt" || type === "iCCP") && keywordEnd >= 0) compressedFrom = keywordEnd + 2;
  if (type === "iTXt" && keywordEnd >= 0 && body[keywordEnd + 1] === 1) {
    // keyword, NUL, compression flag, method, language tag, NUL, translated keyword, NUL, text
    const languageEnd = body.indexOf(0, keywordEnd + 3);
    const translatedEnd = languageEnd < 0 ? -1 : body.indexOf(0, languageEnd + 1);
    compressedFrom = translatedEnd < 0 ? body.length : translatedEnd + 1;
  }
  if (compressedFrom < 0) return body.length;
  const allowance = walk.inflateAllowance();
  try {
    return compressedFrom + inflateSync(body.subarray(compressedFrom), { maxOutputLength: allowance }).byteLength;
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") return compressedFrom + allowance;
    throw new ImageError("undecodable", `the PNG's ${type} chunk is damaged`);
  }
}

// JPEG: SOI, then marker segments (0xFF, marker, length of 2 bytes that counts itself, payload); each SOS is followed
// by entropy-coded data in which 0xFF is escaped as 0xFF00, up to the next marker.
const isSof = (marker: number) => marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
const isAppOrCom = (marker: number) => (marker >= 0xe0 && marker <= 0xef) || marker === 0xfe;
const SOS = 0xda;
const EOI = 0xd9;

function readJpeg(walk: Walk): ImageHeader {
  const { bytes, data } = walk;
  let frame: { width: number; height: number } | undefined;
  let orientation = 0;
  let scans = 0;
  let offset = 2;
  while (offset + 2 <= walk.length) {
    if (bytes[offset] !== 0xff) {
      // Stray bytes before a marker: libjpeg skips them with a warning, so does the walk.
      const next = bytes.indexOf(0xff, offset);
      if (next < 0) break;
      offset = next;
    }
    const marker = bytes[offset + 1]!;
    // Fill bytes before a marker; standalone markers (RSTn, TEM) outside entropy-coded data.
    if (marker === 0xff || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      offset += marker === 0xff ? 1 : 2;
      continue;
    }
    if (marker === EOI) break;
    if (offset + 4 > walk.length) break;
    const length = data.getUint16(offset + 2);
    if (length < 2) throw new ImageError("undecodable", "the JPEG has a marker segment of an impossible length");
    const payload = offset + 4;
    const end = offset + 2 + length;
    if (end > walk.length) break;
    if (isAppOrCom(marker)) {
      walk.metadata(marker === 0xfe ? "JPEG comment" : `JPEG APP${marker - 0xe0} segment`, length - 2);
      if (marker === 0xe1 && orientation === 0 && ascii(bytes, payload, 6) === "Exif\0\0") orientation = exifOrientation(bytes.subarray(payload + 6, end));
    } else if (isSof(marker) && !frame) {
      if (length < 8) throw new ImageError("undecodable", "the JPEG's frame header is too short");
      const precision = bytes[payload]!;
      if (precision !== 8) throw new ImageError("undecodable", `the JPEG has ${precision}-bit samples; only 8-bit JPEGs can be decoded`);
      frame = { height: data.getUint16(payload + 1), width: data.getUint16(payload + 3) };
    } else if (marker === SOS) {
      scans++;
      if (scans > MAX_JPEG_SCANS) throw new ImageError("too_many_scans", `the JPEG has more than ${MAX_JPEG_SCANS} scans`);
      offset = entropyCodedEnd(bytes, end);
      continue;
    }
    offset = end;
  }
  if (!frame) throw walk.cutShort("header");
  return { format: "jpeg", ...frame, orientation: orientation || 1 };
}

/** The offset of the marker that ends the entropy-coded data starting at `from` (the end of the bytes if none). */
function entropyCodedEnd(bytes: Uint8Array, from: number): number {
  for (let offset = bytes.indexOf(0xff, from); offset >= 0; offset = bytes.indexOf(0xff, offset + 1)) {
    const next = bytes[offset + 1];
    if (next === undefined) return bytes.byteLength;
    if (next !== 0x00 && next !== 0xff && !(next >= 0xd0 && next <= 0xd7)) return offset;
  }
  return bytes.byteLength;
}

// WebP: RIFF, size, WEBP, then chunks of type (4), size (4, little-endian), data, padded to an even length.
const WEBP_METADATA = new Set(["EXIF", "XMP ", "ICCP"]);

function readWebp(walk: Walk): ImageHeader {
  const { bytes, data } = walk;
  let size: { width: number; height: number } | undefined;
  let orientation = 1;
  let offset = 12;
  while (offset + 8 <= walk.length) {
    const type = ascii(bytes, offset, 4);
    walk.chunk("WebP");
    const length = data.getUint32(offset + 4, true);
    const payload = offset + 8;
    const end = payload + length + (length & 1);
    if (WEBP_METADATA.has(type)) walk.metadata(`WebP ${type.trim()} chunk`, length);
    if (payload + length > walk.length) {
      if (walk.whole) throw walk.cutShort(`${type.trim()} chunk`);
      if (!size && payload + 10 <= walk.length) size = webpFrameSize(type, walk, payload, length);
      break;
    }
    if (!size) size = webpFrameSize(type, walk, payload, length);
    if (type === "EXIF") orientation = exifOrientation(bytes.subarray(payload, payload + length));
    offset = end;
  }
  if (!size) throw walk.cutShort("header");
  return { format: "webp", ...size, orientation };
}

function webpFrameSize(type: string, walk: Walk, payload: number, length: number): { width: number; height: number } | undefined {
  const { bytes, data } = walk;
  const uint24 = (at: number) => data.getUint16(at, true) | (bytes[at + 2]! << 16);
  if (type === "VP8X" && length >= 10) return { width: uint24(payload + 4) + 1, height: uint24(payload + 7) + 1 };
  if (type === "VP8 " && length >= 10) {
    if (bytes[payload + 3] !== 0x9d || bytes[payload + 4] !== 0x01 || bytes[payload + 5] !== 0x2a) throw new ImageError("undecodable", "the WebP's frame has no start code");
    return { width: data.getUint16(payload + 6, true) & 0x3fff, height: data.getUint16(payload + 8, true) & 0x3fff };
  }
  if (type === "VP8L" && length >= 5) {
    if (bytes[payload] !== 0x2f) throw new ImageError("undecodable", "the lossless WebP has no signature");
    const bits = data.getUint32(payload + 1, true);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  return undefined;
}

/** The orientation in an EXIF block (a TIFF structure): tag 0x0112 of the first IFD; 1 when absent or unreadable. */
function exifOrientation(exif: Uint8Array): number {
  // WebP and PNG writers often keep JPEG's "Exif\0\0" before the TIFF structure.
  const tiff = ascii(exif, 0, 6) === "Exif\0\0" ? exif.subarray(6) : exif;
  if (tiff.byteLength < 8) return 1;
  const data = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const order = ascii(tiff, 0, 2);
  if (order !== "II" && order !== "MM") return 1;
  const little = order === "II";
  const ifd = data.getUint32(4, little);
  if (ifd + 2 > tiff.byteLength) return 1;
  const entries = Math.min(data.getUint16(ifd, little), Math.floor((tiff.byteLength - ifd - 2) / 12));
  for (let index = 0; index < entries; index++) {
    const entry = ifd + 2 + index * 12;
    if (data.getUint16(entry, little) !== 0x0112) continue;
    const value = data.getUint16(entry + 8, little);
    return value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}
