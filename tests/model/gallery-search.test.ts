import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { BLOCK_ROWS, DotKernel } from "../../model/dot-kernel.ts";
import { Gallery, type SubjectScoring } from "../../model/gallery.ts";

// A loaded 2-core CI machine.
setDefaultTimeout(60_000);

/** A deterministic pseudo-random generator in [-0.5, 0.5). */
function random(seed: number): () => number {
  let state = (seed * 2654435761) >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32 - 0.5;
  };
}

function normalised(v: Float32Array): Float32Array {
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/** Embedding-like: a shared direction, a subject's own one, and a little noise of size `spread`. */
function embedding(dimensions: number, subject: number, seed: number, spread: number): Float32Array {
  const common = random(1);
  const own = random(1000 + subject);
  const noise = random(100_000 + seed);
  return normalised(Float32Array.from({ length: dimensions }, () => 1.5 * common() + own() + spread * noise()));
}

/** The faces' exact float32 scores, by the kernel's exact pass (the brute force's arithmetic), by face id. */
function exactScores(faces: Map<string, Float32Array>, query: Float32Array): Map<string, number> {
  const ids = [...faces.keys()];
  const kernel = new DotKernel(query.length, ids.length);
  ids.forEach((id, row) => kernel.setRow(row, faces.get(id)!));
  const scores = kernel.scores(query, ids.length)[0]!;
  return new Map(ids.map((id, row) => [id, scores[row]!]));
}

/**
 * The float32 brute force: every subject scored exactly (subjectSimilarity scores each of its faces, or its template,
 * with the exact kernel and no int8 pass), the k best. Ties at the k-th place may fall either way, so what must agree is
 * the sequence of scores and every returned subject's own score; the face named is the subject's best.
 */
function expectBruteForce(gallery: Gallery, faces: Map<string, Float32Array>, query: Float32Array, k: number, scoring: SubjectScoring): void {
  const exact = new Map(gallery.list().map(({ subject }) => [subject, gallery.subjectSimilarity(subject, query, scoring)!]));
  const expected = [...exact.values()].sort((a, b) => b - a).slice(0, k);
  const got = gallery.search(query, k, scoring);
  expect(got.map((match) => match.similarity)).toEqual(expected);
  const faceScores = exactScores(faces, query);
  for (const match of got) {
    expect(match.similarity).toBe(exact.get(match.subject)!);
    const ownScore = faceScores.get(match.faceId)!;
    expect(ownScore).toBe(Math.max(...gallery.facesOf(match.subject).map(({ faceId }) => faceScores.get(faceId)!)));
    if (scoring === "best-face") expect(ownScore).toBe(match.similarity);
  }
}

describe("dot kernel", () => {
  test("every int8 score is within the stated error of the exact one, across blocks, and for rounding that all leans one way", () => {
    const dimensions = 128;
    const kernel = new DotKernel(dimensions, 1, 7);
    const rows: Float32Array[] = [];
    for (let i = 0; i < 40; i++) rows.push(embedding(dimensions, i % 9, i, i % 4 === 0 ? 0.01 : 0.5));
    const query = embedding(dimensions, 3, 999, 0.3);
    // A spike (code 127, so the row's scale is large) and every other value 0.49 of that scale off its code, in the
    // direction that adds to the dot product with the query: the row's rounding all leans one way.
    const spike = query.indexOf(Math.max(...query));
    const steps = query.map((q, d) => (d === spike ? 127 : Math.round((4 * q) / query[spike]!) + 0.49 * Math.sign(q)));
    rows.push(normalised(steps));
    kernel.reserve(rows.length);
    rows.forEach((row, i) => kernel.setRow(i, row));
    const coarse = kernel.coarseScores(query, rows.length);
    const exact = kernel.scores(query, rows.length);
    expect(coarse.blocks.map((block) => block.length)).toEqual([7, 7, 7, 7, 7, 6]);
    let largest = 0;
    coarse.blocks.forEach((block, b) =>
      block.forEach((score, at) => {
        const row = b * 7 + at;
        expect(exact[b]![at]).toBe(kernel.dot(query, row));
        expect(Math.abs(exact[b]![at]! - rows[row]!.reduce((sum, x, d) => sum + x * query[d]!, 0))).toBeLessThan(1e-6);
        largest = Math.max(largest, Math.abs(score - exact[b]![at]!));
      }),
    );
    expect(largest).toBeLessThanOrEqual(coarse.error);
    // The bound is a real one, not a wide guess: the leaning row comes within a factor 1.5 of it.
    expect(largest).toBeGreaterThan(coarse.error / 1.5);
  });

  test("rows keep their values through growth across blocks and copies between blocks", () => {
    const kernel = new DotKernel(20, 1, 4);
    const rows = Array.from({ length: 11 }, (_, i) => embedding(20, i, i, 0.5));
    rows.forEach((row, i) => {
      kernel.reserve(i + 1);
      kernel.setRow(i, row);
    });
    rows.forEach((row, i) => expect(kernel.row(i)).toEqual(row));
    kernel.copyRow(10, 1);
    expect(kernel.row(1)).toEqual(rows[10]!);
    const query = embedding(20, 3, 77, 0.5);
    expect(kernel.dot(query, 1)).toBe(kernel.dot(query, 10));
    expect(() => kernel.row(12)).toThrow(RangeError);
  });

  test("a block holds 2^20 rows of 128-d, and fewer long rows, always within one wasm memory's 4 GiB", () => {
    expect(new DotKernel(128, 1).blockRows).toBe(BLOCK_ROWS);
    const long = new DotKernel(1024, 1);
    expect(long.blockRows).toBeGreaterThan(500_000);
    expect(long.blockRows * (12 + 5 * 1024)).toBeLessThan(2 ** 32);
  });
});

interface Case {
  name: string;
  dimensions: number;
  blockRows?: number;
  /** The faces, enrolled in order. */
  faces: { subject: string; embedding: Float32Array }[];
  queries: Float32Array[];
  /** What happens after enrolment: removals and renames. */
  change?: (gallery: Gallery) => void;
}

const D = 128;

/**
 * Two rows sharing one scale (a spike at code 127), every other value 0.49 of a step off its code: in `over` against
 * the query (its int8 score too high by ~0.49 scale |q|_1), in `under` with it (too low), and `under`'s codes a little
 * lower, so that it wins exactly while losing in int8 by more than one error bound: a margin of one bound would miss it.
 */
function leaningPair(seed: number): { query: Float32Array; over: Float32Array; under: Float32Array } {
  const query = normalised(Float32Array.from({ length: D }, random(seed)));
  const spike = query.indexOf(Math.max(...query));
  const codes = query.map((q, d) => (d === spike ? 127 : Math.round((4 * q) / query[spike]!)));
  const lower = Float32Array.from(codes);
  const others = [...query.keys()].filter((d) => d !== spike).sort((a, b) => Math.abs(query[b]!) - Math.abs(query[a]!));
  const total = others.reduce((sum, d) => sum + Math.abs(query[d]!), 0);
  let moved = 0;
  for (const d of others) {
    if (moved >= 0.85 * total) break;
    lower[d] = codes[d]! - Math.sign(query[d]!);
    moved += Math.abs(query[d]!);
  }
  const lean = (values: Float32Array, direction: number) => values.map((v, d) => (d === spike ? v : v + direction * 0.49 * Math.sign(query[d]!)) / 127);
  return { query, over: lean(codes, -1), under: lean(lower, 1) };
}
const leaning = leaningPair(5);

const nearTies = Array.from({ length: 60 }, (_, i) => ({ subject: `twin-${i}`, embedding: embedding(D, 0, i, 0.002) }));
const cases: Case[] = [
  {
    name: "faces within the int8 error of each other, one subject each: the int8 order is not the exact order",
    dimensions: D,
    faces: [...nearTies, ...Array.from({ length: 200 }, (_, i) => ({ subject: `other-${i % 70}`, embedding: embedding(D, 1 + (i % 70), i, 0.4) }))],
    queries: [embedding(D, 0, 5000, 0.002), embedding(D, 0, 5001, 0.2), embedding(D, 4, 5002, 0.3)],
  },
  {
    name: "the same, in blocks of 13 rows",
    dimensions: D,
    blockRows: 13,
    faces: [...nearTies, ...Array.from({ length: 200 }, (_, i) => ({ subject: `other-${i % 70}`, embedding: embedding(D, 1 + (i % 70), i, 0.4) }))],
    queries: [embedding(D, 0, 5000, 0.002), embedding(D, 7, 5003, 0.3)],
  },
  {
    name: "exact duplicates under different names, and one subject owning the best 2,000 rows",
    dimensions: D,
    blockRows: 512,
    faces: [
      ...Array.from({ length: 2000 }, (_, i) => ({ subject: "crowd", embedding: embedding(D, 0, i, 0.01) })),
      ...Array.from({ length: 30 }, (_, i) => ({ subject: `copy-${i % 10}`, embedding: embedding(D, 1, 7, 0.3) })),
      ...Array.from({ length: 100 }, (_, i) => ({ subject: `other-${i}`, embedding: embedding(D, 2 + i, i, 0.3) })),
    ],
    queries: [embedding(D, 0, 9000, 0.01), embedding(D, 1, 7, 0.3), embedding(D, 3, 9001, 0.5)],
  },
  {
    name: "removals (rows moved between blocks) and renames (subjects merged)",
    dimensions: 40,
    blockRows: 16,
    faces: Array.from({ length: 150 }, (_, i) => ({ subject: `p${i % 25}`, embedding: embedding(40, i % 25, i, i % 5 === 0 ? 0.001 : 0.6) })),
    queries: [embedding(40, 2, 7000, 0.001), embedding(40, 11, 7001, 0.5), embedding(40, 30, 7002, 0.5)],
    change: (gallery) => {
      for (let i = 1; i <= 150; i += 4) gallery.removeFace(`f${i}`);
      gallery.removeSubject("p3");
      gallery.renameSubject("p4", "p5");
      gallery.renameSubject("p6", "new name");
    },
  },
  {
    name: "rows whose int8 rounding leans apart: the int8 order reversed by more than one error bound",
    dimensions: D,
    faces: [
      { subject: "over", embedding: leaning.over },
      { subject: "under", embedding: leaning.under },
      ...Array.from({ length: 20 }, (_, i) => ({ subject: `other-${i}`, embedding: embedding(D, 1 + i, i, 0.4) })),
    ],
    queries: [leaning.query],
  },
  {
    name: "fewer subjects than k",
    dimensions: 16,
    faces: Array.from({ length: 9 }, (_, i) => ({ subject: `p${i % 3}`, embedding: embedding(16, i % 3, i, 0.5) })),
    queries: [embedding(16, 1, 1, 0.5)],
  },
];

describe("gallery search is the float32 brute force's", () => {
  for (const { name, dimensions, blockRows, faces, queries, change } of cases) {
    test(name, () => {
      const gallery = new Gallery(dimensions, 1, blockRows);
      const embeddings = new Map(faces.map(({ subject, embedding }) => [gallery.enroll(subject, embedding), embedding]));
      change?.(gallery);
      for (const query of queries) {
        for (const scoring of ["template", "best-face"] as const) {
          for (const k of [1, 5, 40, 1000]) expectBruteForce(gallery, embeddings, query, k, scoring);
        }
      }
    });
  }

  test("a template's score is the exact kernel's on the normalised float64 sum of its faces, after changes too", () => {
    const gallery = new Gallery(D, 1, 5);
    const faces = new Map<string, Float32Array>();
    for (let i = 0; i < 30; i++) faces.set(gallery.enroll(`s${i % 7}`, embedding(D, i, i + 11, 0.5)), embedding(D, i, i + 11, 0.5));
    const removed = gallery.facesOf("s3")[0]!.faceId;
    gallery.removeFace(removed);
    faces.delete(removed);
    gallery.renameSubject("s5", "s1");
    const query = embedding(D, 9, 99, 0.5);
    for (const { subject } of gallery.list()) {
      const sum = new Float64Array(D);
      for (const { faceId } of gallery.facesOf(subject)) faces.get(faceId)!.forEach((value, d) => (sum[d]! += value));
      const norm = Math.hypot(...sum);
      const kernel = new DotKernel(D, 1);
      kernel.setRow(0, Float32Array.from(sum, (value) => value / norm));
      expect(gallery.subjectSimilarity(subject, query, "template")).toBe(kernel.dot(query, 0));
      const best = gallery.search(query, 7, "template").find((match) => match.subject === subject);
      expect(best?.similarity).toBe(kernel.dot(query, 0));
    }
  });

  test("the near-tie case does need the re-rank: ranked by int8 scores alone the best face is another", () => {
    const { faces, queries } = cases[0]!;
    const kernel = new DotKernel(D, faces.length);
    faces.forEach((face, row) => kernel.setRow(row, face.embedding));
    const coarse = kernel.coarseScores(queries[0]!, faces.length).blocks[0]!;
    const exact = kernel.scores(queries[0]!, faces.length)[0]!;
    const best = (scores: Float32Array) => scores.indexOf(Math.max(...scores));
    expect(best(coarse)).not.toBe(best(exact));
  });

  test("the leaning case does need a margin of twice the bound: one bound would leave the exact best out", () => {
    const kernel = new DotKernel(D, 2);
    kernel.setRow(0, leaning.over);
    kernel.setRow(1, leaning.under);
    const coarse = kernel.coarseScores(leaning.query, 2);
    const [overCoarse, underCoarse] = coarse.blocks[0]!;
    const [overExact, underExact] = kernel.scores(leaning.query, 2)[0]!;
    expect(underExact!).toBeGreaterThan(overExact!);
    expect(underCoarse!).toBeLessThan(overCoarse! - coarse.error);
    expect(underCoarse!).toBeGreaterThanOrEqual(overCoarse! - 2 * coarse.error);
  });
});
