/**
 * A bucket as a folder of files. Keys are untrusted: each maps to one file name inside the folder, never outside. The
 * folders are the owner's only (0700; the data directory too when a bucket makes it) and so are the files (0600): they
 * hold uploads, the gallery and the recognition keys' hashes.
 */
import { chmod, link, mkdir, open, readFile, rename, rm, stat, readdir, utimes, writeFile } from "node:fs/promises";
import type { BigIntStats } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { checkObjectKey } from "../object-key.ts";
import type { BlobStore, Bucket, PutOptions, VersionedObject } from "../types.ts";

/** File systems allow 255 bytes per name; room is left for the temporary suffix of an atomic write. */
const MAX_FILE_NAME = 200;
/** A conditional put holds its key's lock for milliseconds; a lock this old was left by a process that died holding it. */
const STALE_LOCK_MS = 10_000;
const LOCK_RETRY_MS = 2;
/**
 * How often, at most, a bucket with expiry rules looks for expired objects on a write (as S3 runs its rules lazily);
 * the embedded process also sweeps every bucket this often (roles/start.ts), so an idle service deletes them too.
 */
export const EXPIRY_SWEEP_MS = 60 * 60_000;
const DAY_MS = 24 * 60 * 60_000;
const FOLDER_MODE = 0o700;
const FILE_MODE = 0o600;

/** Objects under `prefix` are deleted `days` after they were last written, as under an S3 lifecycle expiration rule. */
export interface ExpiryRule {
  prefix: string;
  days: number;
  /**
   * Also the files named by a digest alone, as versions before this one named a long key's (its key, so its prefix, is
   * unknown): for a rule whose bucket holds no other long keys.
   */
  legacyDigestNames?: boolean;
}

/** How much of a long key's encoding its file name keeps, before the digest: enough for an expiry rule's prefix. */
const DIGESTED_NAME_START = 100;

/**
 * A key as one safe file name: percent-encoded (no separators, no dot-only names), or, when that is too long for a
 * file name (S3 keys reach 1024 bytes), "#" (which the encoding never leaves bare), the encoding's start, "#" and a
 * digest of the key. `list` decodes the names back; a key long enough to need a digest is never listed.
 */
export function fileNameFor(key: string): string {
  const encoded = encodeKey(key);
  return encoded.length <= MAX_FILE_NAME ? encoded : `#${encoded.slice(0, DIGESTED_NAME_START)}#${digestOf(key)}`;
}

const digestOf = (key: string) => createHash("sha256").update(key).digest("hex");

const LEGACY_DIGEST_NAME = /^#[0-9a-f]{64}$/;

/** The start of the encoded key a file name holds: all of it, what a digested name kept, or nothing (a digest alone, as versions before kept long keys). */
function encodedStartOf(fileName: string): string {
  if (!fileName.startsWith("#")) return fileName;
  const end = fileName.indexOf("#", 1);
  return end === -1 ? "" : fileName.slice(1, end);
}

const encodeKey = (key: string) => encodeURIComponent(key).replaceAll(".", "%2E").replaceAll("*", "%2A");

export class FileBucket implements Bucket {
  private readonly folder: string;
  /** User metadata lives beside the bucket's folder, one JSON file per object, so it never counts as an object. */
  private readonly metadataFolder: string;
  private ready: Promise<unknown> | undefined;
  private tempCounter = 0;
  private nextSweepAt = 0;

  constructor(
    dataDir: string,
    readonly name: string,
    private readonly expiry: readonly ExpiryRule[] = [],
  ) {
    this.folder = join(dataDir, fileNameFor(name));
    this.metadataFolder = join(dataDir, `${fileNameFor(name)}.metadata`);
  }

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<void> {
    await this.putWith(key, options, (temp) => writeFile(temp, body, { mode: FILE_MODE }));
  }

  async putStream(key: string, body: ReadableStream<Uint8Array>, options: PutOptions = {}): Promise<void> {
    await this.putWith(key, options, async (temp) => {
      const file = await open(temp, "w", FILE_MODE);
      try {
        // One chunk in hand at a time: the next is read only once this one is written.
        for await (const chunk of body) await file.write(chunk);
      } finally {
        await file.close();
      }
    });
  }

  /** Writes the object through `write` into a temporary file, then renames it into place: all of it, or nothing. */
  private async putWith(key: string, options: PutOptions, write: (temp: string) => Promise<void>): Promise<void> {
    await this.makeFolders();
    const paths = await this.pathsOf(key);
    if (options.metadata) await this.writeAtomically(paths.metadata, (temp) => writeFile(temp, JSON.stringify(options.metadata), { mode: FILE_MODE }));
    else await rm(paths.metadata, { force: true });
    await this.writeAtomically(paths.object, write);
    if (this.expiry.length > 0 && Date.now() >= this.nextSweepAt) {
      this.nextSweepAt = Date.now() + EXPIRY_SWEEP_MS;
      // Housekeeping on the side of a write: its failure is the next sweep's to retry, never the write's.
      this.expire().catch(() => (this.nextSweepAt = 0));
    }
  }

  /**
   * Deletes the objects its expiry rules say have expired at `now` (by the time they were last written); returns how
   * many. A digested file name keeps the start of its key, so a long key (an upload's file name of many dots) expires too;
   * one named by a digest alone (versions before) only under a rule that says `legacyDigestNames`.
   */
  async expire(now = Date.now()): Promise<number> {
    let files: string[];
    try {
      files = await readdir(this.folder);
    } catch (error) {
      if (isMissing(error)) return 0;
      throw error;
    }
    let expired = 0;
    for (const rule of this.expiry) {
      const prefix = encodeKey(rule.prefix);
      const covered = (name: string) => encodedStartOf(name).startsWith(prefix) || (rule.legacyDigestNames === true && LEGACY_DIGEST_NAME.test(name));
      for (const file of files.filter((name) => covered(name) && !name.endsWith(".tmp"))) {
        const info = await statOrMissing(join(this.folder, file));
        if (!info || now - Number(info.mtimeMs) < rule.days * DAY_MS) continue;
        await rm(join(this.folder, file), { force: true });
        await rm(join(this.metadataFolder, file), { force: true });
        expired++;
      }
    }
    return expired;
  }

  private async makeFolders(): Promise<void> {
    // A folder made by an older version keeps its mode through mkdir: set it (the bucket's folders are the service's own).
    const ownFolder = async (folder: string) => {
      await mkdir(folder, { recursive: true, mode: FOLDER_MODE });
      await chmod(folder, FOLDER_MODE);
    };
    this.ready ??= Promise.all([ownFolder(this.folder), ownFolder(this.metadataFolder)]);
    await this.ready;
  }

  /** The bytes and the version of one open file: a rename over the key while it is read does not mix the two. */
  async read(key: string): Promise<VersionedObject | undefined> {
    let file;
    try {
      file = await open((await this.pathsOf(key)).object, "r");
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    try {
      const info = await file.stat({ bigint: true });
      return { body: bytesOf(await file.readFile()), version: versionOf(info) };
    } finally {
      await file.close();
    }
  }

  /**
   * Compare and swap under the key's lock file (created exclusively, beside the metadata, so it never counts as an
   * object), which every conditional put of the key takes, in this process or another.
   */
  async putIf(key: string, body: Uint8Array | string, expected: string | undefined, options: PutOptions = {}): Promise<string | undefined> {
    await this.makeFolders();
    const paths = await this.pathsOf(key);
    return this.withLock(`${paths.metadata}.lock`, async () => {
      const current = await statOrMissing(paths.object);
      if ((current && versionOf(current)) !== expected) return undefined;
      await this.putWith(key, options, (temp) => writeFile(temp, body, { mode: FILE_MODE }));
      let written = await stat(paths.object, { bigint: true });
      // A version is the file's inode, size and modification time. The file system may hand the replaced file's
      // inode to the next file and its clock is coarse (milliseconds): keep each conditional write's time after the
      // one it replaced, so a version never comes back (no ABA).
      if (current && written.mtimeNs <= current.mtimeNs) {
        const after = Number(current.mtimeNs + 1000n) / 1e9;
        await utimes(paths.object, after, after);
        written = await stat(paths.object, { bigint: true });
      }
      return versionOf(written);
    });
  }

  private async withLock<T>(lockPath: string, critical: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        await (await open(lockPath, "wx", FILE_MODE)).close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        const held = await statOrMissing(lockPath);
        if (held && Date.now() - Number(held.mtimeMs) > STALE_LOCK_MS) await rm(lockPath, { force: true });
        else await Bun.sleep(LOCK_RETRY_MS);
      }
    }
    try {
      return await critical();
    } finally {
      await rm(lockPath, { force: true });
    }
  }

  async metadata(key: string): Promise<Record<string, string> | undefined> {
    if ((await this.version(key)) === undefined) return undefined;
    try {
      return JSON.parse(await readFile((await this.pathsOf(key)).metadata, "utf8")) as Record<string, string>;
    } catch (error) {
      if (isMissing(error)) return {};
      throw error;
    }
  }

  private async writeAtomically(path: string, write: (temp: string) => Promise<void>): Promise<void> {
    const temp = `${path}.${process.pid}.${this.tempCounter++}.tmp`;
    try {
      await write(temp);
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return bytesOf(await readFile((await this.pathsOf(key)).object));
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async version(key: string): Promise<string | undefined> {
    const info = await statOrMissing((await this.pathsOf(key)).object);
    return info && versionOf(info);
  }

  async delete(key: string): Promise<void> {
    const paths = await this.pathsOf(key);
    await rm(paths.object, { force: true });
    await rm(paths.metadata, { force: true });
  }

  async count(): Promise<number> {
    try {
      return (await readdir(this.folder)).filter((file) => !file.endsWith(".tmp")).length;
    } catch (error) {
      if (isMissing(error)) return 0;
      throw error;
    }
  }

  async list(prefix: string, startAfter = ""): Promise<string[]> {
    let files: string[];
    try {
      files = await readdir(this.folder);
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
    // The encoding is character by character: a key starts with the prefix exactly when its file name starts with the
    // prefix's encoding, so only those names are decoded (the folder may hold every classic result beside the gallery).
    const encodedPrefix = encodeKey(prefix);
    const keys = files.filter((file) => file.startsWith(encodedPrefix) && !file.endsWith(".tmp") && !file.startsWith("#")).map(decodeURIComponent);
    const bytes = (key: string) => Buffer.from(key, "utf8");
    return keys
      .filter((key) => key.startsWith(prefix) && Buffer.compare(bytes(key), bytes(startAfter)) > 0)
      .sort((a, b) => Buffer.compare(bytes(a), bytes(b)));
  }

  private async pathsOf(key: string): Promise<{ object: string; metadata: string }> {
    const fileName = fileNameFor(checkObjectKey(key));
    if (fileName.startsWith("#")) await this.adoptLegacyName(key, fileName);
    return { object: join(this.folder, fileName), metadata: join(this.metadataFolder, fileName) };
  }

  /**
   * Versions before this one named a long key's file "#" and the digest alone: such a file (and its metadata) takes its
   * new name the first time its key is used, so a read finds it, a write replaces it and a delete removes it. A file
   * already under the new name is the newer one; the old one just goes.
   */
  private async adoptLegacyName(key: string, fileName: string): Promise<void> {
    const legacyName = `#${digestOf(key)}`;
    /** Links the old name to the new one; false when there is no file of the old name. */
    const adopt = async (folder: string): Promise<boolean> => {
      try {
        // link, not rename: it never replaces a file already at the new name (a concurrent adoption, a newer write).
        await link(join(folder, legacyName), join(folder, fileName));
      } catch (error) {
        if (isMissing(error)) return false;
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      return true;
    };
    // The metadata first: a concurrent adopter that finds the object adopted may remove the old names at once.
    await adopt(this.metadataFolder);
    if (!(await adopt(this.folder))) return;
    await rm(join(this.metadataFolder, legacyName), { force: true });
    await rm(join(this.folder, legacyName), { force: true });
  }
}

export class FileBlobStore implements BlobStore {
  private readonly buckets = new Map<string, FileBucket>();

  /** `expiry`: each bucket's expiry rules, by bucket name. */
  constructor(
    private readonly dataDir: string,
    private readonly expiry: Partial<Record<string, readonly ExpiryRule[]>> = {},
  ) {}

  /** Runs the expiry rules of every bucket that has some, at `now`; returns how many objects were deleted. */
  async expire(now = Date.now()): Promise<number> {
    let expired = 0;
    for (const name of Object.keys(this.expiry)) expired += await this.bucket(name).expire(now);
    return expired;
  }

  bucket(name: string): FileBucket {
    let bucket = this.buckets.get(name);
    if (!bucket) this.buckets.set(name, (bucket = new FileBucket(this.dataDir, name, this.expiry[name])));
    return bucket;
  }
}

function versionOf(info: BigIntStats): string {
  return `${info.mtimeNs}-${info.size}-${info.ino}`;
}

async function statOrMissing(path: string): Promise<BigIntStats | undefined> {
  try {
    return await stat(path, { bigint: true });
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === "ENOENT";
}

/** A plain Uint8Array over a read file's bytes: `new Uint8Array(buffer)` would copy them. */
const bytesOf = (buffer: Buffer) => new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
