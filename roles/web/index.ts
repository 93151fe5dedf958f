/** The web role: HTTP in front, jobs on the request queue, replies from the response queue. */
import type { RoleContext, RunningRole } from "../context.ts";
import { GalleryWriter } from "../gallery-store.ts";
import { createJobSubmitter } from "./jobs.ts";
import { ReplyPoller } from "./reply-poller.ts";
import { createWebServer } from "./server.ts";
import type { ImageInspector } from "./upload.ts";

export interface RunningWebRole extends RunningRole {
  port: number;
}

export async function startWebRole({ config, names, cloud, log: rootLog }: RoleContext, inspect: ImageInspector): Promise<RunningWebRole> {
  const log = rootLog.child({ role: "web" });
  const poller = new ReplyPoller(cloud.queues.queue(names.respQueue), log);
  const gallery = await GalleryWriter.open(cloud.blobs.bucket(names.galleryBucket));
  const jobs = createJobSubmitter({
    inBucket: cloud.blobs.bucket(names.inBucket),
    requestQueue: cloud.queues.queue(names.reqQueue),
    replyQueueName: names.respQueue,
    poller,
    timeoutMs: config.requestTimeoutMs,
    mode: config.answerMode,
  });
  poller.start();
  const server = createWebServer({
    jobs,
    gallery,
    inspect,
    log,
    maxUploadBytes: config.maxUploadBytes,
    apiToken: config.apiToken,
    health: () => ({ role: "web", waitingRequests: poller.pending.size, subjects: gallery.list().length }),
  }).listen({ hostname: config.host, port: config.port, maxRequestBodySize: config.maxUploadBytes + 1024 * 1024 });
  const port = server.server?.port ?? config.port;
  log.info("web_listening", { host: config.host, port });
  return {
    port,
    async stop() {
      await server.stop();
      await poller.stop();
    },
  };
}
