/** The sample set shipped in tests/fixtures (sources and licence in its README.md): people to enroll, other photos of them to ask about, strangers, a photo of two people. */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { readCourseLabels } from "../../scripts/course-labels.ts";

export const FIXTURES = join(import.meta.dir, "..", "fixtures");
/** One folder per person, LFW layout: `people/<Name>/<Name>_0001.jpg`. */
export const PEOPLE_DIR = join(FIXTURES, "people");
export const QUERIES_DIR = join(FIXTURES, "queries");

export interface LabelledImage {
  /** The file name without its extension, as the classic contract answers it. */
  name: string;
  file: string;
  person: string;
}

/** Every photo to enroll, with its person (the folder's name). */
export function enrollmentPhotos(): LabelledImage[] {
  return readdirSync(PEOPLE_DIR)
    .sort()
    .flatMap((person) =>
      readdirSync(join(PEOPLE_DIR, person))
        .sort()
        .map((file) => ({ name: file.replace(/\.jpg$/, ""), file: join(PEOPLE_DIR, person, file), person })),
    );
}

/** One photo of each person that is not among the enrolled ones, with the expected answer (`queries/labels.csv`). */
export function queryPhotos(): LabelledImage[] {
  return [...readCourseLabels(join(QUERIES_DIR, "labels.csv"))].map(([name, person]) => ({ name, file: join(QUERIES_DIR, `${name}.jpg`), person }));
}

/** `count` requests cycling over the query photos, each under its own name (`query_1-0`, `query_2-1`, ...), so each answer names its caller. */
export function queryRequests(count: number): LabelledImage[] {
  const queries = queryPhotos();
  return Array.from({ length: count }, (_, index) => {
    const query = queries[index % queries.length]!;
    return { ...query, name: `${query.name}-${index}` };
  });
}

/** People who are in no folder of `people/`. */
export const STRANGERS = [join(FIXTURES, "strangers", "stranger_1.jpg"), join(FIXTURES, "strangers", "stranger_2.jpg")];

/** A photo of Family2_Man (left) and Family2_Lady (right) side by side, not among the enrolled ones. */
export const TWO_FACES = { file: join(FIXTURES, "groups", "two_faces.jpg"), leftToRight: ["Family2_Man", "Family2_Lady"] } as const;
