/** The course's `Image,Results` CSV: file name without extension -> expected person. */
import { readFileSync } from "node:fs";

export function readCourseLabels(path: string): Map<string, string> {
  const rows = readFileSync(path, "utf8").split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
  const header = rows.shift()?.toLowerCase().replaceAll(" ", "");
  if (header !== "image,results") throw new Error(`${path}: expected the header 'Image,Results'`);
  const labels = new Map<string, string>();
  for (const row of rows) {
    const [image, person] = row.split(",").map((field) => field.trim());
    if (!image || !person) throw new Error(`${path}: bad row '${row}'`);
    labels.set(image.replace(/\.[^.]*$/, ""), person);
  }
  return labels;
}
