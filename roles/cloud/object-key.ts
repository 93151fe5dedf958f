/**
 * The object keys every bucket accepts. S3 itself keeps "../x" as a literal key, but URL parsers on the way (proxies,
 * S3-compatible servers, emulators) resolve dot segments, and with path-style addressing "../other-bucket/x" would
 * then reach another bucket. So a key with such a segment is refused everywhere, locally too, to behave the same.
 */
import { InvalidKeyError } from "./types.ts";

export function checkObjectKey(key: string): string {
  if (key.length === 0 || key.split("/").some((segment) => segment === "." || segment === "..")) throw new InvalidKeyError(key);
  return key;
}
