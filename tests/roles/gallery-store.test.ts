// The segmented gallery store on one bucket, files and S3 (fauxqs): writers at once lose nothing, a change costs a few
// hundred bytes whatever the size, readers catch up on the new changes only and see what a job's version names,
// removals are gone at the next job and erased from storage by a compaction, and a legacy blob is migrated once.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { Gallery, GalleryFormatError } from "../../model/gallery.ts";
import { countingBucket } from "../../roles/cloud/counting-bucket.ts";
import type { Bucket } from "../../roles/cloud/types.ts";
import { GALLERY_LOG_PREFIX, GALLERY_MANIFEST_KEY, GALLERY_PREFIX, GALLERY_SEGMENT_PREFIX, LEGACY_GALLERY_KEY } from "../../roles/deployment.ts";
import { compactionDue, GalleryReader, GalleryWriter, logKey, SEAL_AFTER_ENTRIES, SEAL_IDLE_MS, SEAL_WHEN_IDLE_ENTRIES, SEGMENT_FACES, type CompactionState } from "../../roles/gallery-store.ts";
import { createLogger } from "../../roles/log.ts";
import { startGalleryCompaction, type GalleryCompaction } from "../../roles/web/gallery-compaction.ts";
import { freshLocalBucket, onLocalAndS3Buckets } from "../cloud/clouds.ts";

setDefaultTimeout(60_000);

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const DIMENSIONS = 128;
/** A unit vector of its own for each seed. */
function vector(seed: number): Float32Array {
  const values = Float32Array.from({ length: DIMENSIONS }, (_, d) => Math.sin(seed * 12.9898 + d * 78.233) * 43758.5453 % 1);
  const norm = Math.hypot(...values);
  return values.map((value) => value / norm);
}
const bytesOf = (embedding: Float32Array) => new Uint8Array(embedding.buffer.slice(0));

/** Leaves an embedding where an app instance would and enrolls it through `writer`. */
async function enroll(bucket: Bucket, writer: GalleryWriter, subject: string, seed: number): Promise<string> {
  const key = `embeddings/${subject}-${seed}.f32`;
  await bucket.put(key, bytesOf(vector(seed)));
  return writer.enrollFromKey(subject, key, { createdAt: "2026-12-07T00:00:00.000Z", source: `${subject}.jpg` });
}

/** Every stored byte of the gallery's objects, to look for an embedding in. */
async function storedBytes(bucket: Bucket): Promise<Buffer> {
  const keys = await bucket.list("gallery/");
  return Buffer.concat(await Promise.all(keys.map(async (key) => Buffer.from((await bucket.get(key)) ?? new Uint8Array()))));
}
/** Whether `embedding` is stored anywhere in the gallery: raw (segments) or base64 (the log). */
async function isStored(bucket: Bucket, embedding: Float32Array): Promise<boolean> {
  const raw = Buffer.from(bytesOf(embedding));
  const stored = await storedBytes(bucket);
  return stored.includes(raw) || stored.includes(Buffer.from(raw.toString("base64")));
}

function galleryStore(makeBucket: () => Promise<Bucket>): void {
  test("two writers enrolling at once on one bucket: every enrollment is stored once, and each lists them all", async () => {
    const bucket = await makeBucket();
    const [first, second] = await Promise.all([GalleryWriter.open(bucket), GalleryWriter.open(bucket)]);
    const subjects = Array.from({ length: 12 }, (_, index) => `person-${index}`);
    const faceIds = await Promise.all(subjects.map((subject, index) => enroll(bucket, index % 2 === 0 ? first! : second!, subject, index)));
    expect(new Set(faceIds).size).toBe(subjects.length);
    expect((await bucket.list(GALLERY_LOG_PREFIX)).length).toBe(subjects.length);
    for (const writer of [first!, second!, await GalleryWriter.open(bucket)]) {
      await writer.latest();
      expect(writer.list().map((summary) => summary.subject)).toEqual([...subjects].sort());
    }
    await second!.removeSubject("person-0");
    expect(await first!.removeSubject("person-0")).toBe(0);
    expect((await GalleryWriter.open(bucket)).list()).toHaveLength(subjects.length - 1);
  });

  test("a change stored but answered as a failed condition (the SDK's retry of a lost answer) is not made twice", async () => {
    const bucket = await makeBucket();
    let lost = 1;
    const lostAnswer: Bucket = Object.assign(Object.create(bucket) as Bucket, {
      putIf: async (...args: Parameters<Bucket["putIf"]>) => {
        const version = await bucket.putIf(...args);
        return lost-- > 0 ? undefined : version;
      },
    });
    const writer = await GalleryWriter.open(lostAnswer);
    expect(await enroll(bucket, writer, "Paul", 1)).toBe("f1");
    expect(await bucket.list(GALLERY_LOG_PREFIX)).toEqual([logKey(1)]);
    expect((await GalleryWriter.open(bucket)).list()).toEqual([{ subject: "Paul", faces: 1 }]);
  });

  test("a change that fails to store is not listed, and the next one does not carry it", async () => {
    const bucket = await makeBucket();
    let down = true;
    const outage: Bucket = Object.assign(Object.create(bucket) as Bucket, {
      putIf: async (...args: Parameters<Bucket["putIf"]>) => {
        if (down) throw new Error("connect ECONNREFUSED");
        return bucket.putIf(...args);
      },
    });
    const writer = await GalleryWriter.open(outage);
    await expect(enroll(bucket, writer, "Paul", 1)).rejects.toThrow("ECONNREFUSED");
    expect(writer.list()).toEqual([]);
    down = false;
    await enroll(bucket, writer, "Emily", 2);
    expect(writer.list()).toEqual([{ subject: "Emily", faces: 1 }]);
    expect((await GalleryWriter.open(bucket)).list()).toEqual([{ subject: "Emily", faces: 1 }]);
  });

  test("an enrollment writes one small object whatever the gallery's size, and a reader catches up by reading it alone", async () => {
    const plain = await makeBucket();
    const { bucket, counts } = countingBucket(plain, GALLERY_PREFIX);
    const written = () => counts.written;
    const read = () => counts.read;
    const writer = await GalleryWriter.open(bucket);
    const reader = new GalleryReader(bucket, 60 * 60_000);
    const perEnrollment = async (seed: number) => {
      const before = { written: written(), read: read() };
      await enroll(plain, writer, `person-${seed}`, seed);
      const gallery = await reader.current(writer.version);
      expect(gallery?.hasFace(`f${writer.version}`)).toBe(true);
      return { written: written() - before.written, read: read() - before.read };
    };
    const small = await perEnrollment(0);
    for (let seed = 1; seed < 40; seed++) await enroll(plain, writer, `person-${seed}`, seed);
    await writer.compact();
    await reader.current(writer.version);
    const large = await perEnrollment(40);
    // The embedding is 512 bytes (684 in base64): the rest is the subject, the file name and the times.
    for (const cost of [small, large]) {
      expect(cost.written).toBeLessThan(1024);
      expect(cost.read).toBeLessThan(1024 + 4 * DIMENSIONS);
    }
    expect(Math.abs(large.written - small.written)).toBeLessThan(16);
  });

  test("read your writes: a reader that would not look for a while sees a change at once when the job's version names it", async () => {
    const bucket = await makeBucket();
    const writer = await GalleryWriter.open(bucket);
    await enroll(bucket, writer, "Paul", 1);
    const instances = [new GalleryReader(bucket, 60 * 60_000), new GalleryReader(bucket, 60 * 60_000)];
    for (const instance of instances) expect((await instance.current())?.list()).toEqual([{ subject: "Paul", faces: 1 }]);
    await enroll(bucket, writer, "Emily", 2);
    for (const instance of instances) {
      expect((await instance.current())?.subjectCount).toBe(1);
      expect((await instance.current(writer.version))?.list()).toEqual([{ subject: "Emily", faces: 1 }, { subject: "Paul", faces: 1 }]);
    }
  });

  test("a removal is gone from every reader's answers at the next job, and from storage once compacted", async () => {
    const bucket = await makeBucket();
    const writer = await GalleryWriter.open(bucket);
    await enroll(bucket, writer, "Paul", 1);
    const paulSecond = await enroll(bucket, writer, "Paul", 2);
    await enroll(bucket, writer, "Emily", 3);
    await writer.compact();
    const logged = await enroll(bucket, writer, "Ada", 4);
    const reader = new GalleryReader(bucket, 60 * 60_000);
    expect((await reader.current())?.size).toBe(4);

    expect(await writer.removeFace("Paul", paulSecond)).toBe(true);
    expect(await writer.removeSubject("Ada")).toBe(1);
    const gallery = await reader.current(writer.version);
    expect(gallery?.hasFace(paulSecond)).toBe(false);
    expect(gallery?.hasFace(logged)).toBe(false);
    expect(gallery?.search(vector(2), 1)[0]?.faceId).not.toBe(paulSecond);
    // Still in storage until a compaction: the sealed segment and the log entry.
    expect(await isStored(bucket, vector(2))).toBe(true);
    expect(await isStored(bucket, vector(4))).toBe(true);

    const outcome = await writer.compact();
    // Paul's second face was logged before the first compaction: its entry, kept for readers behind, is erased as Ada's.
    expect(outcome).toMatchObject({ compacted: true, segmentsDeleted: 1, entriesDeleted: 0, entriesErased: 2 });
    for (const seed of [2, 4]) expect(await isStored(bucket, vector(seed))).toBe(false);
    for (const seed of [1, 3]) expect(await isStored(bucket, vector(seed))).toBe(true);
    // The reader that saw the log before the compaction, and a new one, agree.
    expect((await reader.current(writer.version))?.list()).toEqual([{ subject: "Emily", faces: 1 }, { subject: "Paul", faces: 1 }]);
    expect((await new GalleryReader(bucket).current())?.list()).toEqual([{ subject: "Emily", faces: 1 }, { subject: "Paul", faces: 1 }]);
  });

  test("the writer holds no embedding: its export and its compactions read them from the store, segments and log alike, with subjects as they are now", async () => {
    const bucket = await makeBucket();
    const writer = await GalleryWriter.open(bucket);
    const imported = await writer.importFaces([0, 1, 2].map((seed) => ({ subject: seed === 2 ? "Bob" : "Ada", embedding: vector(10 + seed), source: `import-${seed}.jpg` })));
    await enroll(bucket, writer, "Cy", 20);
    await writer.compact();
    const logged = await enroll(bucket, writer, "Cy", 21);
    expect(await writer.renameSubject("Ada", "Ann", false)).toBe("renamed");
    expect(await writer.removeFace("Bob", imported[2]!)).toBe(true);
    const expected = [
      { faceId: imported[0]!, subject: "Ann", embedding: vector(10), source: "import-0.jpg" },
      { faceId: imported[1]!, subject: "Ann", embedding: vector(11), source: "import-1.jpg" },
      { faceId: "f5", subject: "Cy", embedding: vector(20), source: "Cy.jpg" },
      { faceId: logged, subject: "Cy", embedding: vector(21), source: "Cy.jpg" },
    ];
    const exported = async () => {
      const faces = [];
      for await (const { faceId, subject, embedding, source } of writer.exportFaces()) faces.push({ faceId, subject, embedding, source });
      return faces.sort((a, b) => Number(a.faceId.slice(1)) - Number(b.faceId.slice(1)));
    };
    expect(await exported()).toEqual(expected);
    expect(await writer.compact()).toMatchObject({ compacted: true, segmentsDeleted: 1 });
    expect(await exported()).toEqual(expected);
    const reader = await new GalleryReader(bucket).current();
    expect([...reader!.faces()].map(({ faceId, subject, embedding }) => ({ faceId, subject, embedding: new Float32Array(embedding) })).sort((a, b) => Number(a.faceId.slice(1)) - Number(b.faceId.slice(1)))).toEqual(
      expected.map(({ faceId, subject, embedding }) => ({ faceId, subject, embedding: new Float32Array(embedding) })),
    );
    expect(writer).not.toHaveProperty("search");
  });

  test("a reader left behind past a compaction's truncated log loads the manifest again, and renames survive compaction", async () => {
    const bucket = await makeBucket();
    // A writer that keeps no covered entry, as any does past KEPT_LOG_ENTRIES.
    const writer = await GalleryWriter.open(bucket, undefined, { keptLogEntries: 0 });
    const behind = new GalleryReader(bucket, 60 * 60_000);
    await enroll(bucket, writer, "Paul", 1);
    expect((await behind.current())?.size).toBe(1);
    await enroll(bucket, writer, "Emily", 2);
    await writer.compact();
    expect(await writer.renameSubject("Emily", "Emma", false)).toBe("renamed");
    await enroll(bucket, writer, "Ada", 3);
    // The second compaction deletes the log the first one covered: the reader's next change is gone.
    expect((await writer.compact()).entriesDeleted).toBe(2);
    const expected = [{ subject: "Ada", faces: 1 }, { subject: "Emma", faces: 1 }, { subject: "Paul", faces: 1 }];
    expect((await behind.current(writer.version))?.list()).toEqual(expected);
    expect((await new GalleryReader(bucket).current())?.list()).toEqual(expected);
    expect((await GalleryWriter.open(bucket)).facesOf("Emma")).toEqual([{ faceId: "f2", createdAt: "2026-12-07T00:00:00.000Z", source: "Emily.jpg" }]);
  });

  test("a log sealed often leaves one segment not full, and a reader a few seals behind catches up from the log alone", async () => {
    const plain = await makeBucket();
    const writer = await GalleryWriter.open(plain);
    const imported = await writer.importFaces([0, 1].map((seed) => ({ subject: "Ada", embedding: vector(100 + seed), source: "" })));
    const { bucket: counted, counts } = countingBucket(plain, GALLERY_SEGMENT_PREFIX);
    const behind = new GalleryReader(counted, 60 * 60_000);
    expect((await behind.current())?.size).toBe(2);
    const segmentBytesRead = counts.read;
    let seed = 0;
    for (const enrollments of [3, 2, 2]) {
      for (let i = 0; i < enrollments; i++, seed++) await enroll(plain, writer, `person-${seed}`, seed);
      expect((await writer.compact()).compacted).toBe(true);
    }
    const segments = await plain.list(GALLERY_SEGMENT_PREFIX);
    expect(segments).toHaveLength(1);
    expect((await new GalleryReader(plain).current())?.size).toBe(9);
    const caughtUp = await behind.current(writer.version);
    expect(caughtUp?.size).toBe(9);
    expect(counts.read).toBe(segmentBytesRead);
    expect(caughtUp?.search(vector(101), 1)[0]?.faceId).toBe(imported[1]!);
    expect(caughtUp?.search(vector(6), 1)[0]?.subject).toBe("person-6");
  });

  test("a second writer whose segment another writer's seal refilled compacts from the manifest as it is now", async () => {
    const bucket = await makeBucket();
    const first = await GalleryWriter.open(bucket);
    await enroll(bucket, first, "Ada", 1);
    await first.compact();
    const second = await GalleryWriter.open(bucket);
    await enroll(bucket, first, "Bob", 2);
    // Refills, and deletes, the segment the second writer names Ada's face by.
    await first.compact();
    await enroll(bucket, second, "Cy", 3);
    expect((await second.compact()).compacted).toBe(true);
    const subjects = [];
    for await (const { subject } of second.exportFaces()) subjects.push(subject);
    expect(subjects.sort()).toEqual(["Ada", "Bob", "Cy"]);
  });

  test("a compaction that fails after committing its manifest has already erased the removed faces' embeddings", async () => {
    const plain = await makeBucket();
    let failing = false;
    // The compaction's own listing of the whole log, after its manifest (a catch-up lists after a position).
    const bucket: Bucket = Object.assign(Object.create(plain) as Bucket, {
      list: (prefix: string, startAfter?: string) => (failing && prefix === GALLERY_LOG_PREFIX && startAfter === undefined ? Promise.reject(new Error("injected")) : plain.list(prefix, startAfter)),
    });
    const writer = await GalleryWriter.open(bucket);
    const ada = await enroll(bucket, writer, "Ada", 1);
    await enroll(bucket, writer, "Bob", 2);
    await writer.compact();
    expect(await writer.removeFace("Ada", ada)).toBe(true);
    failing = true;
    await expect(writer.compact()).rejects.toThrow("injected");
    failing = false;
    await (await GalleryWriter.open(bucket)).compact();
    expect(await isStored(bucket, vector(1))).toBe(false);
    expect(await isStored(bucket, vector(2))).toBe(true);
  });

  test("an import's reserved ids fix the dimensions at once: another writer's enrollment of another dimension, logged meanwhile, is refused", async () => {
    const bucket = await makeBucket();
    let segmentWritten: () => void = () => {};
    let resume: () => void = () => {};
    const segmentPending = new Promise<void>((resolve) => (segmentWritten = resolve));
    const held: Bucket = Object.assign(Object.create(bucket) as Bucket, {
      put: async (...args: Parameters<Bucket["put"]>) => {
        if (args[0].startsWith(GALLERY_SEGMENT_PREFIX)) {
          segmentWritten();
          await new Promise<void>((resolve) => (resume = resolve));
        }
        return bucket.put(...args);
      },
    });
    const importer = await GalleryWriter.open(held);
    const other = await GalleryWriter.open(bucket);
    const imported = importer.importFaces([{ subject: "Ada", embedding: vector(1), source: "" }]);
    await segmentPending;
    await bucket.put("embeddings/small.f32", new Uint8Array(new Float32Array([1, 0, 0, 0]).buffer));
    await expect(other.enrollFromKey("Bob", "embeddings/small.f32")).rejects.toMatchObject({ code: "embedding_mismatch" });
    resume();
    expect(await imported).toHaveLength(1);
    expect((await new GalleryReader(bucket).current())?.list()).toEqual([{ subject: "Ada", faces: 1 }]);
  });

  test("a legacy single-blob gallery is migrated once: its faces as segments, its ids kept, new ids after them, the blob deleted", async () => {
    const bucket = await makeBucket();
    const legacy = new Gallery(DIMENSIONS);
    legacy.enroll("Paul", vector(1));
    const removed = legacy.enroll("Paul", vector(2));
    legacy.enroll("Emily", vector(3));
    legacy.removeFace(removed);
    await bucket.put(LEGACY_GALLERY_KEY, legacy.serialize());
    const [writer] = await Promise.all([GalleryWriter.open(bucket), GalleryWriter.open(bucket)]);
    expect(await bucket.get(LEGACY_GALLERY_KEY)).toBeUndefined();
    expect(await bucket.list(GALLERY_SEGMENT_PREFIX)).toHaveLength(1);
    expect(writer!.facesOf("Emily").map(({ faceId }) => faceId)).toEqual(["f3"]);
    expect(await enroll(bucket, writer!, "Ada", 4)).toBe("f4");
    expect((await new GalleryReader(bucket).current())?.list()).toEqual([{ subject: "Ada", faces: 1 }, { subject: "Emily", faces: 1 }, { subject: "Paul", faces: 1 }]);
  });

  test("a damaged log entry or manifest is refused, naming its key: never read as an empty gallery", async () => {
    const bucket = await makeBucket();
    const writer = await GalleryWriter.open(bucket);
    await enroll(bucket, writer, "Paul", 1);
    await bucket.put(logKey(2), "{not json");
    await expect(new GalleryReader(bucket).current()).rejects.toThrow(`the gallery object ${logKey(2)} is damaged`);
    await expect(GalleryWriter.open(bucket)).rejects.toBeInstanceOf(GalleryFormatError);
    await bucket.delete(logKey(2));
    await bucket.put(GALLERY_MANIFEST_KEY, JSON.stringify({ format: 2 }));
    await expect(new GalleryReader(bucket).current()).rejects.toThrow(`the gallery object ${GALLERY_MANIFEST_KEY} is damaged`);
  });

  test("a damaged legacy gallery is kept aside and the gallery starts empty", async () => {
    const bucket = await makeBucket();
    await bucket.put(LEGACY_GALLERY_KEY, "not a gallery at all");
    const writer = await GalleryWriter.open(bucket);
    expect(writer.list()).toEqual([]);
    expect(await bucket.get(LEGACY_GALLERY_KEY)).toBeUndefined();
    const aside = await bucket.list(`${LEGACY_GALLERY_KEY}.unreadable-`);
    expect(aside).toHaveLength(1);
    expect(await bucket.get(GALLERY_MANIFEST_KEY)).toBeUndefined();
  });
}

onLocalAndS3Buckets("gallery store", galleryStore);

describe("compaction is due", () => {
  const HOUR = 60 * MINUTE;
  const CHECK = MINUTE;
  const cases: [string, CompactionState, number, boolean][] = [
    ["nothing changed", { entries: 0, oldestRemovalAt: undefined, idleMs: 0 }, 0, false],
    ["a few enrollments", { entries: SEAL_AFTER_ENTRIES - 1, oldestRemovalAt: undefined, idleMs: 0 }, DAY * 10, false],
    ["a full log's worth", { entries: SEAL_AFTER_ENTRIES, oldestRemovalAt: undefined, idleMs: 0 }, 0, true],
    ["more than a full log's worth", { entries: SEAL_AFTER_ENTRIES + 1, oldestRemovalAt: undefined, idleMs: 0 }, 0, true],
    ["an import of a million faces: a reserve and an import entry a segment", { entries: 2 * Math.ceil(1_000_000 / SEGMENT_FACES), oldestRemovalAt: undefined, idleMs: 0 }, DAY * 10, false],
    ["fewer entries than a seal when idle, idle a day", { entries: SEAL_WHEN_IDLE_ENTRIES - 1, oldestRemovalAt: undefined, idleMs: DAY }, 0, false],
    ["enough entries to seal when idle, still changing", { entries: SEAL_WHEN_IDLE_ENTRIES, oldestRemovalAt: undefined, idleMs: SEAL_IDLE_MS - 1 }, 0, false],
    ["enough entries to seal when idle, idle long enough", { entries: SEAL_WHEN_IDLE_ENTRIES, oldestRemovalAt: undefined, idleMs: SEAL_IDLE_MS }, 0, true],
    ["a writer that changed nothing since it opened, over a log to seal", { entries: SEAL_WHEN_IDLE_ENTRIES, oldestRemovalAt: undefined, idleMs: Infinity }, 0, true],
    ["a removal an hour old", { entries: 1, oldestRemovalAt: 0, idleMs: 0 }, HOUR, false],
    ["a removal nearly at the bound, with two checks to go", { entries: 1, oldestRemovalAt: 0, idleMs: 0 }, DAY - 2 * CHECK, true],
    ["a removal just before that", { entries: 1, oldestRemovalAt: 0, idleMs: 0 }, DAY - 2 * CHECK - 1, false],
  ];
  for (const [name, state, now, due] of cases) test(name, () => expect(compactionDue(state, now, DAY, CHECK)).toBe(due));

  test(`in a store, ${SEAL_WHEN_IDLE_ENTRIES} entries are sealed once the writer has been idle ${SEAL_IDLE_MS} ms, not before`, async () => {
    const bucket = await freshLocalBucket();
    const writer = await GalleryWriter.open(bucket);
    for (let seed = 0; seed < SEAL_WHEN_IDLE_ENTRIES; seed++) await enroll(bucket, writer, `person-${seed}`, seed);
    const changedBy = Date.now();
    expect(await writer.compactIfDue(changedBy, DAY, MINUTE)).toBeUndefined();
    expect(await writer.compactIfDue(changedBy + SEAL_IDLE_MS, DAY, MINUTE)).toMatchObject({ compacted: true });
  });

  test("the web role's loop seals the log once the writer has gone idle, and only then", async () => {
    const bucket = await freshLocalBucket();
    const events: string[] = [];
    let compaction: GalleryCompaction | undefined;
    const writer = await GalleryWriter.open(bucket, undefined, { onChange: () => compaction?.changed() });
    compaction = startGalleryCompaction(writer, DAY, createLogger({}, (line) => events.push(JSON.parse(line).event)));
    try {
      const start = Date.now();
      for (let seed = 0; seed < SEAL_WHEN_IDLE_ENTRIES; seed++) await enroll(bucket, writer, `person-${seed}`, seed);
      const lastChange = Date.now();
      // One enrollment every SEAL_IDLE_MS / 2 keeps it from sealing.
      await Bun.sleep(SEAL_IDLE_MS / 2);
      await enroll(bucket, writer, "person-late", SEAL_WHEN_IDLE_ENTRIES);
      await Bun.sleep(SEAL_IDLE_MS / 2);
      expect(await bucket.get(GALLERY_MANIFEST_KEY)).toBeUndefined();
      while (!(await bucket.get(GALLERY_MANIFEST_KEY)) && Date.now() - start < 4 * SEAL_IDLE_MS) await Bun.sleep(50);
      expect(await bucket.get(GALLERY_MANIFEST_KEY)).toBeDefined();
      expect(Date.now() - lastChange).toBeGreaterThanOrEqual(1.5 * SEAL_IDLE_MS);
      expect(events).toEqual([]);
    } finally {
      compaction.stop();
    }
  });

  // On files only: the count is the replica's, whatever the bucket, and 1,024 enrollments over HTTP take seconds.
  test("in a store, after 1,024 log entries, not sequence numbers: an import of 5,000 faces (two entries) does not make it due", async () => {
    const bucket = await freshLocalBucket();
    const writer = await GalleryWriter.open(bucket);
    const compactedAfterCheck = async (checking: GalleryWriter) => (await checking.compactIfDue(0, DAY, MINUTE))?.compacted ?? false;
    const imported = Array.from({ length: 5000 }, (_, seed) => ({ subject: `imported-${seed % 1000}`, embedding: vector(1000 + seed), source: "" }));
    expect(await writer.importFaces(imported)).toHaveLength(imported.length);
    expect(writer.version).toBeGreaterThan(SEAL_AFTER_ENTRIES);
    expect(await compactedAfterCheck(writer)).toBe(false);
    expect(await compactedAfterCheck(await GalleryWriter.open(bucket))).toBe(false);
    for (let seed = 0; seed < SEAL_AFTER_ENTRIES - 3; seed++) await enroll(bucket, writer, `person-${seed}`, seed);
    expect(await compactedAfterCheck(writer)).toBe(false);
    await enroll(bucket, writer, "person-last", SEAL_AFTER_ENTRIES);
    expect(await compactedAfterCheck(writer)).toBe(true);
    expect(await compactedAfterCheck(writer)).toBe(false);
    expect((await new GalleryReader(bucket).current())?.size).toBe(imported.length + SEAL_AFTER_ENTRIES - 2);
  });
});
