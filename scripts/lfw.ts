/** LFW pairs files and image folders, shared by the evaluation and benchmark scripts. */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { EmbeddedFace } from "../model/types.ts";

export interface LfwPair {
  first: string;
  second: string;
  same: boolean;
}

export interface LfwPairs {
  /** The file's own folds (View 2 files), or one list to cross-validate (single-split files). */
  folds: LfwPair[][];
  predefinedFolds: boolean;
}

export function lfwImagePath(imagesDir: string, name: string, number: number): string {
  return join(imagesDir, name, `${name}_${String(number).padStart(4, "0")}.jpg`);
}

/** Reads `N` files (N same then N different pairs) and `folds N` files (per fold N same then N different). */
export function readLfwPairs(path: string, imagesDir: string): LfwPairs {
  const lines = readFileSync(path, "utf8").split(/\r?\n/).map((line) => line.trim().split(/\s+/)).filter((fields) => fields[0]);
  const header = lines.shift()?.map(Number) ?? [];
  const [foldCount, perFold] = header.length >= 2 ? [header[0]!, header[1]!] : [1, header[0]!];
  if (!Number.isInteger(foldCount) || !Number.isInteger(perFold) || foldCount < 1 || perFold < 1) {
    throw new Error(`${path}: the first line must be 'N' or 'folds N'`);
  }
  if (lines.length !== foldCount * perFold * 2) {
    throw new Error(`${path}: expected ${foldCount * perFold * 2} pair lines after the header, found ${lines.length}`);
  }
  const parse = (fields: string[], lineNumber: number): LfwPair => {
    if (fields.length === 3) {
      const [name, i, j] = fields as [string, string, string];
      return { first: lfwImagePath(imagesDir, name, Number(i)), second: lfwImagePath(imagesDir, name, Number(j)), same: true };
    }
    if (fields.length === 4) {
      const [name1, i, name2, j] = fields as [string, string, string, string];
      return { first: lfwImagePath(imagesDir, name1, Number(i)), second: lfwImagePath(imagesDir, name2, Number(j)), same: false };
    }
    throw new Error(`${path}:${lineNumber}: expected 'Name i j' or 'Name1 i Name2 j'`);
  };
  const pairs = lines.map((fields, i) => parse(fields, i + 2));
  const folds = Array.from({ length: foldCount }, (_, f) => pairs.slice(f * perFold * 2, (f + 1) * perFold * 2));
  for (const [f, fold] of folds.entries()) {
    if (fold.slice(0, perFold).some((p) => !p.same) || fold.slice(perFold).some((p) => p.same)) {
      throw new Error(`${path}: fold ${f + 1} must list ${perFold} same-person pairs, then ${perFold} different-person pairs`);
    }
  }
  return { folds, predefinedFolds: foldCount > 1 };
}

/** The face LFW means: LFW crops are centred on their subject, so the detected face nearest the centre. */
export function centralFace(faces: readonly EmbeddedFace[], width: number, height: number): EmbeddedFace | undefined {
  const distance = ({ box }: EmbeddedFace) => Math.hypot(box.x + box.width / 2 - width / 2, box.y + box.height / 2 - height / 2);
  return [...faces].sort((a, b) => distance(a) - distance(b))[0];
}

/** Cosine similarity of two L2-normalised embeddings. */
export function similarity(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

export interface LfwPerson {
  name: string;
  /** Image paths in the order of their numbers. */
  photos: string[];
}

/** Every person folder (or link to one) of an LFW-layout image folder, by name, each with its .jpg photos in number order. */
export function readLfwPeople(imagesDir: string): LfwPerson[] {
  return readdirSync(imagesDir)
    .filter((name) => statSync(join(imagesDir, name)).isDirectory())
    .sort()
    .map((name) => ({ name, photos: readdirSync(join(imagesDir, name)).filter((file) => file.endsWith(".jpg")).sort().map((file) => join(imagesDir, name, file)) }))
    .filter((person) => person.photos.length > 0);
}

export interface IdentificationSplit {
  /** Each person with more than `galleryPhotos` photos, enrolled from the first `galleryPhotos` of them. */
  gallery: LfwPerson[];
  /** The other photos of the enrolled people (at most `probesPerPerson` each), with whom they show. */
  probes: { subject: string; photo: string }[];
  /** The one photo of each person who has only one: never enrolled, sent as probes of strangers. */
  strangers: string[];
}

export function identificationSplit(people: readonly LfwPerson[], galleryPhotos: number, probesPerPerson = Infinity): IdentificationSplit {
  if (!Number.isInteger(galleryPhotos) || galleryPhotos < 1) throw new Error(`the gallery needs at least one photo per person, got ${galleryPhotos}`);
  const enrolled = people.filter((person) => person.photos.length > galleryPhotos);
  return {
    gallery: enrolled.map(({ name, photos }) => ({ name, photos: photos.slice(0, galleryPhotos) })),
    probes: enrolled.flatMap(({ name, photos }) => photos.slice(galleryPhotos, galleryPhotos + probesPerPerson).map((photo) => ({ subject: name, photo }))),
    strangers: people.filter((person) => person.photos.length === 1).map((person) => person.photos[0]!),
  };
}

/**
 * The similarity (dot product of the normalised embeddings) of every pair of images of two different people, an image's
 * person being its folder (LFW's layout): what an embedder's calibration is measured on.
 */
export function differentPersonSimilarities(embeddings: ReadonlyMap<string, Float32Array>): Float32Array {
  const images = [...embeddings].map(([path, embedding]) => ({ person: basename(dirname(path)), embedding }));
  let pairs = 0;
  for (let i = 0; i < images.length; i++) for (let j = i + 1; j < images.length; j++) if (images[i]!.person !== images[j]!.person) pairs++;
  const similarities = new Float32Array(pairs);
  let next = 0;
  for (let i = 0; i < images.length; i++) {
    const { person, embedding: a } = images[i]!;
    for (let j = i + 1; j < images.length; j++) {
      if (images[j]!.person === person) continue;
      const b = images[j]!.embedding;
      let dot = 0;
      for (let d = 0; d < a.length; d++) dot += a[d]! * b[d]!;
      similarities[next++] = dot;
    }
  }
  return similarities;
}
