/** A bucket as a folder of files. Keys are untrusted: each maps to one file name inside the folder, never outside. */
import { mkdir, readFile, rename, rm, stat, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BlobStore, Bucket, PutOptions } from "../types.ts";

/** Encodes a key as a single safe file name (reversible, no separators, no dot-only names). */
function fileNameFor(key: string): string {
  return encodeURIComponent(key).replaceAll(".", "%2E").replaceAll("*", "%2A");
}

export class FileBucket implements Bucket {
  private readonly folder: string;
  /** User metadata lives beside the bucket's folder, one JSON file per object, so it never counts as an object. */
  private readonly metadataFolder: string;
  private ready: Promise<unknown> | undefined;
  private tempCounter = 0;

  constructor(
    dataDir: string,
    readonly name: string,
  ) {
    this.folder = join(dataDir, fileNameFor(name));
    this.metadataFolder = join(dataDir, `${fileNameFor(name)}.metadata`);
  }

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<void> {
    this.ready ??= Promise.all([mkdir(this.folder, { recursive: true }), mkdir(this.metadataFolder, { recursive: true })]);
    await this.ready;
    const metadataPath = join(this.metadataFolder, fileNameFor(key));
    if (options.metadata) await this.writeAtomically(metadataPath, JSON.stringify(options.metadata));
    else await rm(metadataPath, { force: true });
    await this.writeAtomically(this.pathOf(key), body);
  }

  async metadata(key: string): Promise<Record<string, string> | undefined> {
    if ((await this.version(key)) === undefined) return undefined;
    try {
      return JSON.parse(await readFile(join(this.metadataFolder, fileNameFor(key)), "utf8")) as Record<string, string>;
    } catch (error) {
      if (isMissing(error)) return {};
      throw error;
    }
  }

  private async writeAtomically(path: string, body: Uint8Array | string): Promise<void> {
    const temp = `${path}.${process.pid}.${this.tempCounter++}.tmp`;
    await writeFile(temp, body);
    await rename(temp, path);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.pathOf(key)));
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async version(key: string): Promise<string | undefined> {
    try {
      const info = await stat(this.pathOf(key), { bigint: true });
      return `${info.mtimeNs}-${info.size}-${info.ino}`;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
    await rm(join(this.metadataFolder, fileNameFor(key)), { force: true });
  }

  async count(): Promise<number> {
    try {
      return (await readdir(this.folder)).filter((file) => !file.endsWith(".tmp")).length;
    } catch (error) {
      if (isMissing(error)) return 0;
      throw error;
    }
  }

  private pathOf(key: string): string {
    if (key.length === 0) throw new Error("empty object key");
    return join(this.folder, fileNameFor(key));
  }
}

export class FileBlobStore implements BlobStore {
  private readonly buckets = new Map<string, FileBucket>();

  constructor(private readonly dataDir: string) {}

  bucket(name: string): Bucket {
    let bucket = this.buckets.get(name);
    if (!bucket) this.buckets.set(name, (bucket = new FileBucket(this.dataDir, name)));
    return bucket;
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === "ENOENT";
}
