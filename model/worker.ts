/** One inference thread: loads the models once, then analyses one image per message. */
import type { FromWorker, ToWorker } from "./worker-messages.ts";
import { toWorkerError } from "./worker-messages.ts";
import { Recognizer } from "./recognizer.ts";
import { loadParts } from "./registry.ts";

declare const self: Worker;

let recognizer: Recognizer | undefined;

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
        reply({ type: "analysis", id: message.id, analysis: await recognizer.analyzeBytes(message.image) });
      } catch (error) {
        reply({ type: "analysis-failed", id: message.id, error: toWorkerError(error) });
      }
      return;
  }
};
