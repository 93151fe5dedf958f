// The gallery's curation additions: where each face came from (kept through removal and a save), a subject's faces,
// renaming and merging, and one subject's similarity scored as search scores it.
import { expect, test } from "bun:test";
import { Gallery } from "../../model/gallery.ts";

const v = (...values: number[]) => new Float32Array(values);

test("each face keeps its details through a removal (rows are swapped) and a save", () => {
  const gallery = new Gallery(2);
  const first = gallery.enroll("Ada", v(1, 0), { createdAt: "2026-01-01T00:00:00.000Z", source: "ada1.jpg" });
  gallery.enroll("Bob", v(0, 1), { createdAt: "2026-01-02T00:00:00.000Z", source: "bob.jpg" });
  const third = gallery.enroll("Ada", v(0.6, 0.8), { createdAt: "2026-01-03T00:00:00.000Z", source: "ada2.jpg" });
  gallery.removeFace(first);
  const restored = Gallery.deserialize(gallery.serialize());
  expect(restored.facesOf("Ada")).toEqual([{ faceId: third, createdAt: "2026-01-03T00:00:00.000Z", source: "ada2.jpg" }]);
  expect(restored.facesOf("Bob").map((face) => face.source)).toEqual(["bob.jpg"]);
  expect(restored.facesOf("Nobody")).toEqual([]);
});

test("rename moves every face; into an existing subject it merges them, and search sees the new names at once", () => {
  const gallery = new Gallery(2);
  gallery.enroll("Ada", v(1, 0));
  gallery.enroll("Bob", v(0, 1));
  expect(gallery.search(v(1, 0), 1)[0]!.subject).toBe("Ada");
  expect(gallery.renameSubject("Ada", "Ada L")).toBe(1);
  expect(gallery.search(v(1, 0), 1)[0]!.subject).toBe("Ada L");
  expect(gallery.renameSubject("Ada L", "Bob")).toBe(1);
  expect(gallery.list()).toEqual([{ subject: "Bob", faces: 2 }]);
  expect(gallery.renameSubject("Nobody", "X")).toBe(0);
});

test("one subject's similarity is the one search gives it, by template or by best face", () => {
  const gallery = new Gallery(2);
  gallery.enroll("Ada", v(1, 0));
  gallery.enroll("Ada", v(0.6, 0.8));
  gallery.enroll("Bob", v(0, 1));
  const probe = v(0.8, 0.6);
  for (const scoring of ["template", "best-face"] as const) {
    const ranked = gallery.search(probe, 2, scoring);
    for (const { subject, similarity } of ranked) expect(gallery.subjectSimilarity(subject, probe, scoring)).toBeCloseTo(similarity, 5);
  }
  expect(gallery.subjectSimilarity("Nobody", probe)).toBeUndefined();
});
