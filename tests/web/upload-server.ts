// The upload tests' server: the web role as `bun start` runs it (startWebRole and its listen options) over the local
// stand-ins, configured from FACEFLEET_* variables, with a fake app instance answering every job "Paul" without
// reading the image. A process of its own, so that its memory is its own. Prints {"port","pid"} once it listens.
import { localCloud } from "../../roles/cloud/index.ts";
import { loadConfig, resourceNames } from "../../roles/config.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";
import { imageInspector } from "../../roles/start.ts";
import { startWebRole } from "../../roles/web/index.ts";
import { answerJobs, captureLogs } from "./support.ts";

const config = loadConfig(process.env, { host: "127.0.0.1", port: 0 });
const names = resourceNames(config);
const cloud = localCloud(config, async () => ({ stop: async () => {} }));
const web = await startWebRole({ config, names, cloud, log: captureLogs().logger, metrics: new ServiceMetrics() }, { inspect: imageInspector(config.model.maxPixels), tokenSource: "data-dir" });
const abort = new AbortController();
const inBucket = cloud.blobs.bucket(names.inBucket);
void answerJobs({ queues: cloud.queues, requestQueue: cloud.queues.queue(names.reqQueue), inBucket, outBucket: cloud.blobs.bucket(names.outBucket), galleryBucket: inBucket, signal: abort.signal, decode: false });
console.log(JSON.stringify({ port: web.port, pid: process.pid }));
