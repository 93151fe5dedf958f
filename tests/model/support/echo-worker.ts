/**
 * A stand-in inference worker for the pool's own tests: it speaks the real protocol, answers after a short delay with
 * the image's first byte as its width, fails the load when asked (onnxDir "fail", or a folder holding a file named
 * "fail"), dies when an image starts with 0xFF and hangs for ever on one that starts with 0xFE.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { FromWorker, ToWorker } from "../../../model/worker-messages.ts";

declare const self: Worker;

const reply = (message: FromWorker) => self.postMessage(message);

self.onmessage = async ({ data: message }: MessageEvent<ToWorker>) => {
  if (message.type === "load") {
    if (message.onnxDir === "fail" || existsSync(join(message.onnxDir, "fail"))) reply({ type: "load-failed", error: { message: "no models here" } });
    else reply({ type: "ready" });
    return;
  }
  const first = message.image[0] ?? 0;
  if (first === 0xff) process.exit(3);
  if (first === 0xfe) await new Promise(() => {});
  await Bun.sleep(30);
  if (first === 0) {
    reply({ type: "analysis-failed", id: message.id, error: { message: "empty", imageErrorCode: "empty" } });
    return;
  }
  const timings = { decodeMs: 0, detectMs: 0, alignMs: 0, embedMs: 0 };
  reply({ type: "analysis", id: message.id, analysis: { width: first, height: 1, faces: [], timings } });
};
