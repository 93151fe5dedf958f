/** Byte strings for the fuzzer's files and requests. */
const encoder = new TextEncoder();

/** UTF-8 bytes of `text` (ASCII in practice). */
export const bytesOf = (text: string) => encoder.encode(text);

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
