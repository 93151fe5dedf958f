import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { Gallery, GalleryFormatError, type SubjectScoring } from "../../model/gallery.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

/** A deterministic pseudo-random unit vector. */
function unitVector(dimensions: number, seed: number): Float32Array {
  let state = seed * 2654435761 + 1;
  const v = new Float32Array(dimensions);
  for (let i = 0; i < dimensions; i++) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    v[i] = state / 2 ** 31 - 0.5;
  }
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

interface Face {
  subject: string;
  embedding: Float32Array;
}

/** Per subject its best face by a plain double-precision dot product, the k best subjects first. */
function naiveSearch(faces: Map<string, Face>, query: Float32Array, k: number): [string, { faceId: string; similarity: number }][] {
  const best = new Map<string, { faceId: string; similarity: number }>();
  for (const [faceId, face] of faces) {
    const similarity = face.embedding.reduce((s, x, i) => s + x * query[i]!, 0);
    if ((best.get(face.subject)?.similarity ?? -Infinity) < similarity) best.set(face.subject, { faceId, similarity });
  }
  return [...best].sort((a, b) => b[1].similarity - a[1].similarity).slice(0, k);
}

/** Per subject the normalised sum of its faces against the query, in double precision, with its best face; the k best first. */
function naiveTemplateSearch(faces: Map<string, Face>, query: Float32Array, k: number): [string, { faceId: string; similarity: number }][] {
  const sums = new Map<string, number[]>();
  for (const face of faces.values()) {
    const sum = sums.get(face.subject) ?? new Array<number>(query.length).fill(0);
    face.embedding.forEach((x, i) => (sum[i]! += x));
    sums.set(face.subject, sum);
  }
  const best = new Map(naiveSearch(faces, query, Infinity));
  return [...sums]
    .map(([subject, sum]): [string, { faceId: string; similarity: number }] => {
      const norm = Math.hypot(...sum);
      return [subject, { faceId: best.get(subject)!.faceId, similarity: sum.reduce((s, x, i) => s + (x / norm) * query[i]!, 0) }];
    })
    .sort((a, b) => b[1].similarity - a[1].similarity)
    .slice(0, k);
}

function expectSameAsNaive(gallery: Gallery, faces: Map<string, Face>, query: Float32Array, k: number, scoring: SubjectScoring = "best-face"): void {
  const expected = (scoring === "best-face" ? naiveSearch : naiveTemplateSearch)(faces, query, k);
  const got = gallery.search(query, k, scoring);
  const bestFaces = new Map(naiveSearch(faces, query, Infinity));
  expect(got.map((m) => m.subject)).toEqual(expected.map(([subject]) => subject));
  got.forEach((m, i) => {
    expect(m.similarity).toBeCloseTo(expected[i]![1].similarity, 5);
    // Near-identical faces of one person may tie within float rounding: any face of theirs with the best score will do.
    const face = faces.get(m.faceId)!;
    expect(face.subject).toBe(m.subject);
    expect(face.embedding.reduce((s, x, j) => s + x * query[j]!, 0)).toBeCloseTo(bestFaces.get(m.subject)!.similarity, 5);
  });
}

describe("gallery", () => {
  test("best-face search finds the enrolled face, best subjects first, one entry per subject", () => {
    const gallery = new Gallery(16, 1);
    gallery.enroll("alice", unitVector(16, 1));
    gallery.enroll("alice", unitVector(16, 2));
    gallery.enroll("bob", unitVector(16, 3));
    gallery.enroll("carol", unitVector(16, 4));
    const matches = gallery.search(unitVector(16, 2), 10, "best-face");
    expect(matches.map((m) => m.subject).sort()).toEqual(["alice", "bob", "carol"]);
    expect(matches[0]).toMatchObject({ subject: "alice", faceId: "f2" });
    expect(matches[0]!.similarity).toBeCloseTo(1, 5);
    for (let i = 1; i < matches.length; i++) expect(matches[i - 1]!.similarity).toBeGreaterThanOrEqual(matches[i]!.similarity);
    expect(gallery.search(unitVector(16, 2), 1)).toHaveLength(1);
    expect(gallery.search(unitVector(16, 2), 0)).toEqual([]);
    expect(new Gallery(16).search(unitVector(16, 2), 3)).toEqual([]);
  });

  test("template search scores a subject by the normalised mean of its faces, naming its most similar face", () => {
    const gallery = new Gallery(16, 1);
    const alice = [unitVector(16, 1), unitVector(16, 2), unitVector(16, 5)];
    const aliceIds = alice.map((embedding) => gallery.enroll("alice", embedding));
    gallery.enroll("bob", unitVector(16, 3));
    const query = unitVector(16, 2);
    const mean = new Float32Array(16).map((_, d) => alice.reduce((sum, e) => sum + e[d]!, 0));
    const norm = Math.hypot(...mean);
    const expected = mean.reduce((sum, x, d) => sum + (x / norm) * query[d]!, 0);
    const matches = gallery.search(query, 2);
    const aliceMatch = matches.find((m) => m.subject === "alice")!;
    expect(aliceMatch.similarity).toBeCloseTo(expected, 5);
    expect(aliceMatch.similarity).toBeLessThan(0.99);
    expect(aliceMatch.faceId).toBe(aliceIds[1]!);
    expect(matches.find((m) => m.subject === "bob")!.similarity).toBeCloseTo(unitVector(16, 3).reduce((s, x, d) => s + x * query[d]!, 0), 5);
    expect(gallery.search(query, 1, "best-face")[0]).toMatchObject({ subject: "alice", faceId: aliceIds[1] });
    expect(gallery.search(query, 1, "best-face")[0]!.similarity).toBeCloseTo(1, 5);
  });

  test("a template follows removals, and subjectCount counts distinct subjects", () => {
    const gallery = new Gallery(16, 1);
    const first = gallery.enroll("alice", unitVector(16, 1));
    gallery.enroll("alice", unitVector(16, 2));
    gallery.enroll("bob", unitVector(16, 3));
    expect(gallery.subjectCount).toBe(2);
    gallery.removeFace(first);
    expect(gallery.search(unitVector(16, 2), 1)[0]!.similarity).toBeCloseTo(1, 5);
    gallery.removeSubject("bob");
    expect(gallery.subjectCount).toBe(1);
    expect(new Gallery(16).subjectCount).toBe(0);
  });

  test("agrees with a naive search on random data, through growth and removals", () => {
    const dimensions = 37;
    const gallery = new Gallery(dimensions, 2);
    const naive = new Map<string, Face>();
    for (let i = 0; i < 300; i++) {
      const subject = `s${i % 23}`;
      const embedding = unitVector(dimensions, i + 100);
      naive.set(gallery.enroll(subject, embedding), { subject, embedding });
    }
    for (let i = 0; i < 300; i += 7) {
      const faceId = `f${i + 1}`;
      expect(gallery.removeFace(faceId)).toBe(true);
      naive.delete(faceId);
    }
    expect(gallery.removeSubject("s5")).toBe([...naive.values()].filter((f) => f.subject === "s5").length);
    for (const [id, face] of naive) if (face.subject === "s5") naive.delete(id);
    expect(gallery.size).toBe(naive.size);
    for (let q = 0; q < 20; q++) {
      expectSameAsNaive(gallery, naive, unitVector(dimensions, 10_000 + q), 5);
      expectSameAsNaive(gallery, naive, unitVector(dimensions, 10_000 + q), 5, "template");
    }
  });

  test("the coarse int8 pass never changes the answer: clustered faces with near ties, any k", () => {
    const dimensions = 64;
    const gallery = new Gallery(dimensions);
    const faces = new Map<string, Face>();
    // Like real embedders: every face shares a common direction, so strangers still score ~0.7, and people's faces cluster.
    const common = unitVector(dimensions, 7);
    const center = (person: number) => unitVector(dimensions, 50_000 + person).map((x, i) => x + 1.5 * common[i]!);
    const near = (person: number, seed: number, spread: number) => {
      const noise = unitVector(dimensions, seed);
      const v = center(person).map((x, i) => x + spread * noise[i]!);
      const norm = Math.hypot(...v);
      return v.map((x) => x / norm);
    };
    for (let i = 0; i < 3000; i++) {
      const subject = `p${i % 150}`;
      const embedding = near(i % 150, 60_000 + i, i % 3 === 0 ? 0.001 : 0.4);
      faces.set(gallery.enroll(subject, embedding), { subject, embedding });
    }
    for (const k of [1, 3, 10, 149, 150, 500]) {
      for (let q = 0; q < 8; q++) {
        const query = near((q * 41) % 150, 90_000 + q, q % 2 === 0 ? 0.002 : 0.5);
        expectSameAsNaive(gallery, faces, query, k);
        expectSameAsNaive(gallery, faces, query, k, "template");
      }
    }
  });

  test("list counts faces per subject; removal of unknown things is a no-op", () => {
    const gallery = new Gallery(4);
    gallery.enroll("b", unitVector(4, 1));
    gallery.enroll("a", unitVector(4, 2));
    gallery.enroll("b", unitVector(4, 3));
    expect(gallery.list()).toEqual([
      { subject: "a", faces: 1 },
      { subject: "b", faces: 2 },
    ]);
    expect(gallery.removeFace("nope")).toBe(false);
    expect(gallery.removeSubject("nobody")).toBe(0);
  });

  test("serialises and deserialises to the same gallery", () => {
    const gallery = new Gallery(8);
    for (let i = 0; i < 10; i++) gallery.enroll(`person ${i % 3} ü`, unitVector(8, i));
    gallery.removeFace("f4");
    const copy = Gallery.deserialize(gallery.serialize());
    expect(copy.size).toBe(9);
    expect(copy.list()).toEqual(gallery.list());
    const query = unitVector(8, 99);
    expect(copy.search(query, 3)).toEqual(gallery.search(query, 3));
    expect(copy.enroll("new", unitVector(8, 5))).toBe("f11");
  });

  test("refuses wrong dimensions and damaged data with clear errors", () => {
    const gallery = new Gallery(8);
    expect(() => gallery.enroll("x", new Float32Array(7))).toThrow("7 dimensions");
    expect(() => gallery.search(new Float32Array(9), 1)).toThrow("9 dimensions");
    expect(() => Gallery.deserialize(new Uint8Array(3))).toThrow(GalleryFormatError);
    expect(() => Gallery.deserialize(new TextEncoder().encode("definitely not a gallery"))).toThrow("not a facefleet gallery");
    const bytes = gallery.serialize();
    new DataView(bytes.buffer).setUint32(4, 99);
    expect(() => Gallery.deserialize(bytes)).toThrow("format 99");
    gallery.enroll("x", unitVector(8, 1));
    expect(() => Gallery.deserialize(gallery.serialize().subarray(0, 20))).toThrow("truncated");
    const damaged = gallery.serialize();
    damaged[damaged.length - 3] = 0xff;
    expect(() => Gallery.deserialize(damaged)).toThrow("labels are damaged");
  });
});
