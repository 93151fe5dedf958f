/**
 * What the segmented gallery store (roles/gallery-store.ts) costs at a size, on the local file bucket: the gallery is
 * filled directly as segments (a synthetic legacy blob, migrated as the web role migrates one), then
 * - the web role's writer: its memory once open, and the bytes one enrollment writes;
 * - an app instance's reader: the bytes and time of a cold load, and of the catch-up after one enrollment.
 *   bun run scripts/gallery-store-costs.ts [--faces N] [--dimensions D]
 * Last line: one JSON object.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Gallery } from "../model/gallery.ts";
import { countingBucket } from "../roles/cloud/counting-bucket.ts";
import { FileBucket } from "../roles/cloud/local/file-bucket.ts";
import { GALLERY_PREFIX, LEGACY_GALLERY_KEY } from "../roles/deployment.ts";
import { GalleryReader, GalleryWriter } from "../roles/gallery-store.ts";

const { values: args } = parseArgs({
  options: { faces: { type: "string", default: "100000" }, dimensions: { type: "string", default: "128" }, "writer-memory-of": { type: "string" } },
});
/** The web role's memory, measured in a process of its own: this one's memory holds the synthetic fill. */
if (args["writer-memory-of"]) {
  const before = process.memoryUsage().rss;
  const writer = await GalleryWriter.open(new FileBucket(args["writer-memory-of"], "gallery"));
  Bun.gc(true);
  console.log(JSON.stringify({ rss: process.memoryUsage().rss, rssGrowth: process.memoryUsage().rss - before, subjects: writer.subjectCount }));
  process.exit(0);
}
const faces = Number(args.faces);
const dimensions = Number(args.dimensions);
const FACES_PER_SUBJECT = 3;

const randomUnit = () => {
  const v = Float32Array.from({ length: dimensions }, () => Math.random() - 0.5);
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
};
const megabytes = (bytes: number) => Math.round(bytes / 1e5) / 10;

const dataDir = mkdtempSync(join(tmpdir(), "facefleet-gallery-costs-"));
try {
  const plain = new FileBucket(dataDir, "gallery");
  {
    const legacy = new Gallery(dimensions, faces);
    for (let i = 0; i < faces; i++) legacy.enroll(`subject-${Math.floor(i / FACES_PER_SUBJECT)}`, randomUnit(), { createdAt: new Date().toISOString(), source: `photo-${i}.jpg` });
    await plain.put(LEGACY_GALLERY_KEY, legacy.serialize());
  }
  const { bucket, counts } = countingBucket(plain, GALLERY_PREFIX);
  let started = performance.now();
  const writer = await GalleryWriter.open(bucket);
  const migrateMs = performance.now() - started;
  const child = Bun.spawnSync(["bun", import.meta.path, "--writer-memory-of", dataDir], { stderr: "inherit" });
  const writerMemory = JSON.parse(child.stdout.toString()) as { rss: number; rssGrowth: number };

  const reader = new GalleryReader(bucket, 60 * 60_000);
  const before = { ...counts };
  started = performance.now();
  await reader.current();
  const coldLoad = { bytes: counts.read - before.read, ms: performance.now() - started };

  /** One enrollment through the writer, then the reader's catch-up to it. */
  const enrollAndCatchUp = async (index: number) => {
    const from = { ...counts };
    await plain.put(`embeddings/${index}.f32`, new Uint8Array(randomUnit().buffer));
    await writer.enrollFromKey(`newcomer-${index}`, `embeddings/${index}.f32`, { createdAt: new Date().toISOString(), source: `newcomer-${index}.jpg` });
    const written = counts.written - from.written;
    const readFrom = counts.read;
    const catchUpStarted = performance.now();
    const gallery = await reader.current(writer.version);
    if (gallery?.faceCount(`newcomer-${index}`) !== 1) throw new Error("the reader did not catch up");
    const ms = performance.now() - catchUpStarted;
    const searchStarted = performance.now();
    gallery.search(randomUnit(), 5);
    return { written, bytes: counts.read - readFrom, ms, searchMs: performance.now() - searchStarted };
  };
  // The first change after a load grows the matrix (capacity doubles); the next ones are the steady state.
  const first = await enrollAndCatchUp(0);
  const steady = [];
  for (let index = 1; index <= 5; index++) steady.push(await enrollAndCatchUp(index));
  const writtenPerEnrollment = Math.max(first.written, ...steady.map(({ written }) => written));
  const median = (values: number[]) => values.sort((a, b) => a - b)[2]!;
  const catchUp = { bytes: Math.max(...steady.map(({ bytes }) => bytes)), ms: median(steady.map(({ ms }) => ms)), searchMs: median(steady.map(({ searchMs }) => searchMs)) };

  console.log(`${faces} faces x ${dimensions}-d, ${Math.ceil(faces / FACES_PER_SUBJECT)} subjects (filled as segments in ${Math.round(migrateMs)} ms)`);
  console.log(`web role's writer (a process of its own): ${megabytes(writerMemory.rss)} MB RSS once open, ${megabytes(writerMemory.rssGrowth)} MB of it from opening the gallery`);
  console.log(`one enrollment writes ${writtenPerEnrollment} bytes`);
  console.log(`app instance: cold load reads ${megabytes(coldLoad.bytes)} MB in ${Math.round(coldLoad.ms)} ms; catch-up after one enrollment reads ${catchUp.bytes} bytes in ${catchUp.ms.toFixed(1)} ms (median of 5; the first after the load, which grows the matrix, ${Math.round(first.ms)} ms); the search after it ${catchUp.searchMs.toFixed(1)} ms`);
  console.log(
    JSON.stringify({
      faces,
      dimensions,
      writerRssMB: megabytes(writerMemory.rss),
      writerRssGrowthMB: megabytes(writerMemory.rssGrowth),
      bytesWrittenPerEnrollment: writtenPerEnrollment,
      coldLoadBytes: coldLoad.bytes,
      coldLoadMs: Math.round(coldLoad.ms),
      catchUpBytes: catchUp.bytes,
      catchUpMs: Math.round(catchUp.ms * 10) / 10,
      firstCatchUpMs: Math.round(first.ms),
      searchAfterChangeMs: Math.round(catchUp.searchMs * 10) / 10,
    }),
  );
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
