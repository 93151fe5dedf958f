/** One inference thread: loads the models once, then analyses one image per message. */
import type { FromWorker, ToWorker } from "./worker-messages.ts";
import { toWorkerError } from "./worker-messages.ts";
import { Recognizer } from "./recognizer.ts";
import { loadParts } from "./registry.ts";

declare const self: Worker;

let recognizer: Recognizer | undefined;

/**
 * Bytes of finished images (as sent and as decoded) after which the worker collects its garbage. Left to itself, JSC
 * let about 110 MB of them gather in each worker before it collected (4.8 MP images); a full collection takes 3 to 8
 * ms, so every 32 MB it costs about 2% of a 4.8 MP image's analysis and next to nothing for small images.
 */
const COLLECT_AFTER_BYTES = 32 * 1024 * 1024;
let finishedBytes = 0;

function finished(image: Uint8Array, decodedBytes: number): void {
  finishedBytes += image.byteLength + decodedBytes;
  if (finishedBytes < COLLECT_AFTER_BYTES) return;
  finishedBytes = 0;
  Bun.gc(true);
}

const reply = (message: FromWorker) => self.postMessage(message);

self.onmessage = async ({ data: message }: MessageEvent<ToWorker>) => {
  switch (message.type) {
    case "load":
      try {
        recognizer = new Recognizer(await loadParts(message.config, message.onnxDir), message.config);
        reply({ type: "ready" });
      } catch (error) {
        reply({ type: "load-failed", error: toWorkerError(error) });
      }
      return;
    case "analyze":
      try {
        if (!recognizer) throw new Error("the worker was asked to analyse before its models loaded");
        const analysis = await recognizer.analyzeBytes(message.image);
        reply({ type: "analysis", id: message.id, analysis });
        finished(message.image, analysis.width * analysis.height * 3);
      } catch (error) {
        reply({ type: "analysis-failed", id: message.id, error: toWorkerError(error) });
        finished(message.image, 0);
      }
      return;
  }
};
