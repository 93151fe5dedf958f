// The gallery keeps its subject codes and templates up to date change by change: after any sequence of enrollments,
// removals, renames and merges it answers exactly as a gallery built afresh from the same faces.
import { expect, setDefaultTimeout, test } from "bun:test";
import { Gallery } from "../../model/gallery.ts";

// A thousand changes, each checked against a rebuilt gallery: seconds of CPU, more on a loaded 2-core machine.
setDefaultTimeout(60_000);

const DIMENSIONS = 16;

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return state / 2 ** 32;
  };
}

function unit(next: () => number): Float32Array {
  const values = Float32Array.from({ length: DIMENSIONS }, () => next() - 0.5);
  const norm = Math.hypot(...values);
  return values.map((value) => value / norm);
}

const rounded = (matches: { subject: string; faceId: string; similarity: number }[]) =>
  matches.map(({ subject, faceId, similarity }) => ({ subject, faceId, similarity: Math.round(similarity * 1e5) / 1e5 }));

// Blocks of 7 rows: faces and templates (a freed code takes the last code's template from another block) cross blocks.
test.each([["one block", undefined], ["blocks of 7 rows", 7]])("1,000 random changes, %s: every search, by template and by best face, and every subject's similarity, as a rebuilt gallery answers", (_, blockRows) => {
  const next = random(17);
  const gallery = new Gallery(DIMENSIONS, 4, blockRows);
  const subjects = Array.from({ length: 30 }, (_, index) => `s${index}`);
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  for (let step = 0; step < 1000; step++) {
    const roll = next();
    const listed = gallery.list().map(({ subject }) => subject);
    if (roll < 0.55 || listed.length === 0) gallery.enroll(pick(subjects), unit(next));
    else if (roll < 0.75) gallery.removeFace(pick(gallery.facesOf(pick(listed))).faceId);
    else if (roll < 0.82) gallery.removeSubject(pick(listed));
    else gallery.renameSubject(pick(listed), pick(subjects));

    if (step % 10 !== 0 && step !== 999) continue;
    const rebuilt = Gallery.deserialize(gallery.serialize());
    expect(gallery.subjectCount).toBe(rebuilt.subjectCount);
    expect(gallery.list()).toEqual(rebuilt.list());
    if (gallery.size === 0) continue;
    const probe = unit(next);
    for (const scoring of ["template", "best-face"] as const) {
      expect(rounded(gallery.search(probe, 5, scoring))).toEqual(rounded(rebuilt.search(probe, 5, scoring)));
    }
    for (const { subject } of gallery.list()) {
      expect(gallery.subjectSimilarity(subject, probe)).toBeCloseTo(rebuilt.subjectSimilarity(subject, probe)!, 5);
    }
  }
});
