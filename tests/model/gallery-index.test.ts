// The gallery's names without its vectors (model/gallery-index.ts) against a plain model of maps, through a seeded
// random run of every change: its typed rows, its face-number table (grown and emptied) and its text store (compacted
// as removed faces leave bytes behind) must answer as the maps do.
import { describe, expect, test } from "bun:test";
import { GalleryIndex } from "../../model/gallery-index.ts";

interface Face {
  subject: string;
  createdAt: string;
  source: string;
  segment: string | undefined;
}

/** A small deterministic generator (mulberry32), so a failure replays. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Names are held as UTF-8 bytes: names one byte apart, and a name longer than the lookup's first key buffer.
const SUBJECTS = ["Ada", "ada", "Ada ", "Zoë", "Émile", "bob", "Bob_2", "佐藤", "Ölaf", "z", "Aaron_Sorkin", `${"佐藤Émile".repeat(30)}!`];

function expectSame(index: GalleryIndex, model: Map<string, Face>): void {
  const subjects = new Map<string, string[]>();
  for (const [faceId, face] of model) subjects.set(face.subject, [...(subjects.get(face.subject) ?? []), faceId]);
  expect(index.size).toBe(model.size);
  expect(index.subjectCount).toBe(subjects.size);
  const byNumber = (a: string, b: string) => Number(a.slice(1)) - Number(b.slice(1));
  expect(index.list()).toEqual([...subjects.keys()].sort((a, b) => a.localeCompare(b)).map((subject) => ({ subject, faces: subjects.get(subject)!.length })));
  for (const [subject, faceIds] of subjects) {
    expect(index.faceCount(subject)).toBe(faceIds.length);
    expect(index.facesOf(subject)).toEqual(faceIds.sort(byNumber).map((faceId) => ({ faceId, createdAt: model.get(faceId)!.createdAt, source: model.get(faceId)!.source })));
  }
  for (const [faceId, face] of model) {
    const row = index.rowOfFace(faceId)!;
    expect([index.faceIdAt(row), index.subjectAt(row), index.segmentAt(row), index.subjectOf(faceId)]).toEqual([faceId, face.subject, face.segment, face.subject]);
  }
  expect(new Set(index.faceIdsBySegment())).toEqual(new Set(model.keys()));
  const inLog = [...model].filter(([, face]) => face.segment === undefined).map(([faceId]) => faceId).sort(byNumber);
  expect(index.faceIdsBySegment((segment) => segment === undefined)).toEqual(inLog);
}

describe("gallery index", () => {
  test("answers as a plain model of maps through a random run of inserts, removals, renames and merges", () => {
    const next = random(7);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
    const index = new GalleryIndex();
    const model = new Map<string, Face>();
    let number = 0;
    for (let step = 0; step < 6000; step++) {
      const roll = next();
      if (roll < 0.55 || model.size === 0) {
        const faceId = `f${(number += 1 + Math.floor(next() * 3))}`;
        const createdAt = pick(["", new Date(1_700_000_000_000 + step * 1000).toISOString(), "yesterday", "2026-12-01T09:12:04Z"]);
        const face: Face = { subject: pick(SUBJECTS), createdAt, source: `${pick(["", "photo", "Zoë à la plage", "x".repeat(40)])}-${step}.jpg`, segment: pick([undefined, "gallery/segments/a", "gallery/segments/b"]) };
        index.insert(faceId, face.subject, face, face.segment);
        model.set(faceId, face);
      } else if (roll < 0.85) {
        const faceId = pick([...model.keys()]);
        expect(index.removeFace(faceId)).toBe(true);
        model.delete(faceId);
      } else if (roll < 0.9) {
        const subject = pick(SUBJECTS);
        const faces = [...model].filter(([, face]) => face.subject === subject);
        expect(index.rowsOf(subject).length).toBe(faces.length);
        for (const [faceId] of faces) {
          index.removeFace(faceId);
          model.delete(faceId);
        }
      } else {
        const [from, to] = [pick(SUBJECTS), pick([...SUBJECTS, "Renamed"])];
        const moved = [...model.values()].filter((face) => face.subject === from);
        expect(index.renameSubject(from, to)).toBe(moved.length);
        for (const face of moved) face.subject = to;
      }
      if (step % 500 === 0) expectSame(index, model);
    }
    expectSame(index, model);
    expect(index.removeFace("nope")).toBe(false);
    expect(() => index.insert("nope", "Ada", { createdAt: "", source: "" })).toThrow("not a face id");
  });

  test("a face inserted again under its id replaces the old one; the last row moves into a removed one", () => {
    const index = new GalleryIndex();
    for (const faceId of ["f1", "f2", "f3"]) index.insert(faceId, "Ada", { createdAt: "", source: faceId });
    index.insert("f1", "Bob", { createdAt: "", source: "again" });
    expect([index.size, index.faceCount("Ada"), index.subjectOf("f1"), index.detailsAt(index.rowOfFace("f1")!).source]).toEqual([3, 2, "Bob", "again"]);
    expect(index.removeRow(0)).toBe(2);
    expect(index.faceIdAt(0)).toBe("f1");
  });
});
