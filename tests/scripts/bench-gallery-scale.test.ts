import { expect, test } from "bun:test";
import { runScript } from "./support.ts";

const FIGURES = [
  "faces",
  "fill_s",
  "import_requests",
  "import_mb",
  "fill_peak_web_rss_mb",
  "enroll_p50_ms",
  "enroll_p99_ms",
  "enrolls_per_s",
  "s3_bytes_written_per_enroll",
  "s3_bytes_read_per_enroll_per_instance",
  "search_p50_ms",
  "search_p99_ms",
  "list_page_ms",
  "app_cold_start_s",
  "web_rss_mb",
  "app_rss_mb",
  "contended_errors",
];

async function expectFigures(args: string[]): Promise<Record<string, unknown>> {
  const run = await runScript("bench-gallery-scale.ts", args);
  expect(run.exitCode).toBe(0);
  expect(Object.keys(run.summary).sort()).toEqual([...FIGURES].sort());
  expect(run.summary.faces).toBe(1000);
  expect(run.summary.contended_errors).toBe(0);
  for (const figure of FIGURES.filter((name) => name !== "contended_errors")) expect(run.summary[figure] as number).toBeGreaterThan(0);
  return run.summary;
}

test("bench-gallery-scale fills 1,000 faces in one import request, enrolls with two writers and prints every figure, none contended", async () => {
  const summary = await expectFigures(["--faces", "1000", "--writers", "2", "--one-request-import"]);
  expect(summary.import_requests).toBe(1);
  expect(summary.web_rss_mb).toBe(summary.app_rss_mb);
}, 60_000);

test("with --region, the web and the app role are processes of their own, each with its RSS", async () => {
  const summary = await expectFigures(["--faces", "1000", "--writers", "2", "--region"]);
  expect(summary.web_rss_mb).not.toBe(summary.app_rss_mb);
}, 60_000);
