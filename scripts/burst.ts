/**
 * An upload burst against a fresh service, and the service's memory: --requests concurrent uploads of one large JPEG
 * of noise (made here with sharp; noise does not compress away: about 9.6 MB and 4.8 MP by default), while the resident
 * memory of the service's whole process group is sampled from /proc every 20 ms.
 *   bun run scripts/burst.ts [--role all|web] [--requests 100] [--megabytes 9.6] [--distinct] [--face FILE]
 * --role all (default): `bun start` on the local stand-ins, every role in one process group, as a new user runs it.
 * --role web: the emulated region (fauxqs for S3 and SQS, in this script's process), `bun index.ts --role web`
 *   measured on its own, and one `bun index.ts --role app` beside it (not measured) answering the jobs.
 * --distinct: each request's image differs (a JPEG comment with its index), so the app's analysis cache cannot answer
 *   for it. Default: the same image each time, as in the measurement of issue 8.
 * --face FILE: a photo scaled onto the middle of the noise and enrolled first, so answers are 200 `<name>:<person>`;
 *   without it, the answer is 422 no_face, an answer all the same.
 * Answered: any HTTP answer below 500. Failed: 5xx, a refused connection, no answer within 5 minutes.
 * Last line: one JSON object {"role","requests","answered","failed","statuses","image_mb","megapixels","baseline_rss_mb","peak_rss_mb","after_rss_mb","seconds"}.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { startGroup, startSplitService, stopGroup, waitForHealth, type SplitService } from "./service-processes.ts";

const { values: args } = parseArgs({
  options: {
    role: { type: "string", default: "all" },
    requests: { type: "string", default: "100" },
    megabytes: { type: "string", default: "9.6" },
    distinct: { type: "boolean", default: false },
    face: { type: "string" },
  },
});
if (args.role !== "all" && args.role !== "web") {
  console.error("usage: bun run scripts/burst.ts [--role all|web] [--requests 100] [--megabytes 9.6] [--distinct] [--face FILE]");
  process.exit(2);
}
const WIDTH = 2688;
const HEIGHT = 1792;
const requests = Number(args.requests);
const token = crypto.randomUUID();
const port = 20_000 + Math.floor(Math.random() * 20_000);
const url = `http://127.0.0.1:${port}`;

/** A WIDTH x HEIGHT JPEG of noise (with `face` in the middle), its quality chosen so its size is nearest `megabytes`. */
async function largeJpeg(megabytes: number, face: string | undefined): Promise<Uint8Array> {
  const pixels = new Uint8Array(WIDTH * HEIGHT * 3);
  // getRandomValues fills at most 64 KiB a call.
  for (let offset = 0; offset < pixels.length; offset += 65536) crypto.getRandomValues(pixels.subarray(offset, offset + 65536));
  let canvas = sharp(pixels, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } });
  if (face) {
    const scaled = await sharp(face).resize({ height: Math.round(HEIGHT * 0.8) }).toBuffer();
    canvas = sharp(await canvas.composite([{ input: scaled, gravity: "centre" }]).raw().toBuffer(), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } });
  }
  const raw = await canvas.raw().toBuffer();
  let best: Uint8Array | undefined;
  for (let low = 50, high = 100; low <= high; ) {
    const quality = Math.floor((low + high) / 2);
    const encoded = new Uint8Array(await sharp(raw, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } }).jpeg({ quality, chromaSubsampling: "4:4:4" }).toBuffer());
    if (!best || Math.abs(encoded.length - megabytes * 1e6) < Math.abs(best.length - megabytes * 1e6)) best = encoded;
    if (encoded.length < megabytes * 1e6) low = quality + 1;
    else high = quality - 1;
  }
  return best!;
}

/** The same image with a JPEG comment (COM segment) after its start marker: other bytes, same pixels. */
function withComment(jpeg: Uint8Array, comment: string): Uint8Array {
  const text = new TextEncoder().encode(comment);
  const segment = new Uint8Array([0xff, 0xfe, (text.length + 2) >> 8, (text.length + 2) & 0xff, ...text]);
  const out = new Uint8Array(jpeg.length + segment.length);
  out.set(jpeg.subarray(0, 2));
  out.set(segment, 2);
  out.set(jpeg.subarray(2), 2 + segment.length);
  return out;
}

/** Resident memory of every process in process group `group`, in MB. */
function groupRssMb(group: number): number {
  let pages = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // ended meanwhile
    }
    // Fields after the command name (which may hold spaces) in parentheses: state is field 3, pgrp 5, rss 24.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === group) pages += Number(fields[21]);
  }
  return (pages * 4096) / 1e6;
}

const settings = { FACEFLEET_PORT: String(port), FACEFLEET_HOST: "127.0.0.1", FACEFLEET_API_TOKEN: token };
let split: SplitService | undefined;
let measured: ChildProcess;
// The local stand-ins' data (the burst stores about 1 GB of images), removed at the end.
const dataDir = mkdtempSync(join(tmpdir(), "facefleet-burst-"));
if (args.role === "all") measured = startGroup(["bun", "start"], { ...settings, FACEFLEET_DATA_DIR: dataDir }, "inherit");
else {
  split = await startSplitService({ settings, prefix: `burst${process.pid}`, webRoles: "web", output: { web: "inherit", app: "inherit" } });
  measured = split.web;
}

try {
  const image = await largeJpeg(Number(args.megabytes), args.face);
  await waitForHealth(url, split ? [split.web, split.app] : [measured]);
  if (args.face) {
    const form = new FormData();
    form.append("image", new File([readFileSync(args.face)], "face.jpg", { type: "image/jpeg" }));
    const enrolled = await fetch(`${url}/v1/subjects/Face/faces`, { method: "POST", body: form, headers: { authorization: `Bearer ${token}` } });
    if (enrolled.status !== 201) throw new Error(`enrolling ${args.face}: ${enrolled.status} ${await enrolled.text()}`);
  }
  await Bun.sleep(2000); // let the boot's own allocations settle before the baseline
  const baseline = groupRssMb(measured.pid!);
  let peak = baseline;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, groupRssMb(measured.pid!));
      await Bun.sleep(20);
    }
  })();
  const started = performance.now();
  const statuses: Record<string, number> = {};
  await Promise.all(
    Array.from({ length: requests }, async (_, index) => {
      const bytes = args.distinct ? withComment(image, `burst ${index}`) : image;
      const form = new FormData();
      form.append("inputFile", new File([bytes], `burst_${index}.jpg`, { type: "image/jpeg" }));
      let status: string;
      try {
        const response = await fetch(`${url}/`, { method: "POST", body: form, signal: AbortSignal.timeout(300_000) });
        const text = await response.text();
        status = response.ok ? "200" : `${response.status} ${(JSON.parse(text) as { error?: string }).error ?? ""}`.trim();
      } catch (error) {
        status = (error as Error).name;
      }
      statuses[status] = (statuses[status] ?? 0) + 1;
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await Bun.sleep(2000);
  sampling = false;
  await sampler;
  const after = groupRssMb(measured.pid!);
  const answered = Object.entries(statuses).reduce((sum, [status, count]) => sum + (/^[1-4]\d\d/.test(status) ? count : 0), 0);
  const mb = (value: number) => Math.round(value);
  console.log(
    JSON.stringify({
      role: args.role,
      requests,
      answered,
      failed: requests - answered,
      statuses,
      image_mb: Math.round(image.length / 1e5) / 10,
      megapixels: Math.round((WIDTH * HEIGHT) / 1e5) / 10,
      baseline_rss_mb: mb(baseline),
      peak_rss_mb: mb(peak),
      after_rss_mb: mb(after),
      seconds: Math.round(seconds * 10) / 10,
    }),
  );
} finally {
  if (split) await split.stop();
  else await stopGroup(measured);
  rmSync(dataDir, { recursive: true, force: true });
}
