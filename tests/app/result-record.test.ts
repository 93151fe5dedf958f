import { describe, expect, test } from "bun:test";
import { resultRecord } from "../../roles/app/handle-job.ts";
import type { FaceResult } from "../../roles/messages.ts";
import type { ImageAnalysis } from "../../model/types.ts";

const analysis: ImageAnalysis = { width: 640, height: 480, faces: [], timings: { decodeMs: 2.345, detectMs: 3.1, alignMs: 4.2, embedMs: 7.05 } };

const face = (person: string, similarity: number): FaceResult => ({ box: [10.4, 20.6, 100, 120], score: 0.98765, wholeImage: false, person, similarity, known: similarity > 0.93 });

describe("the result record stored as S3 metadata", () => {
  test("holds every face, the classic answer's first, rounded", () => {
    const record = JSON.parse(decodeURIComponent(resultRecord([face("Bob", 0.5), face("Paul", 0.95)], 1, analysis, 0.93)));
    expect(record.faces.map((f: FaceResult) => f.person)).toEqual(["Paul", "Bob"]);
    expect(record.faces[0]).toMatchObject({ box: [10, 21, 100, 120], score: 0.988, similarity: 0.95, known: true });
    expect(record).toMatchObject({ faceCount: 2, threshold: 0.93, timingsMs: { decodeMs: 2.345, embedMs: 7.05 } });
  });

  test("a group photo of long non-Latin names keeps under S3's 2 KB, dropping faces from the end", () => {
    const faces = Array.from({ length: 12 }, (_, i) => face(`${"名".repeat(30)}${i}`, 0.9));
    const encoded = resultRecord(faces, 7, analysis, 0.93);
    expect(encoded.length).toBeLessThanOrEqual(1900);
    const record = JSON.parse(decodeURIComponent(encoded));
    expect(record.faceCount).toBe(12);
    expect(record.faces.length).toBeGreaterThanOrEqual(1);
    expect(record.faces.length).toBeLessThan(12);
    expect(record.faces[0].person).toBe(`${"名".repeat(30)}7`);
  });
});
