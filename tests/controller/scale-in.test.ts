// Scale-in against SQS counts that read low, as AWS documents they may for up to a minute: the controller, the app
// role and the job reports run on the emulated region's S3 and SQS; the app "instances" are in-process app roles whose
// jobs take 2 s. The controller must not stop an instance while it holds a job.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { CreateQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { AnalysisCache } from "../../roles/app/analysis-cache.ts";
import { startAppRole } from "../../roles/app/index.ts";
import { awsCloud } from "../../roles/cloud/index.ts";
import { BucketJobReports } from "../../roles/cloud/job-reports.ts";
import { LocalFleet } from "../../roles/cloud/local/process-fleet.ts";
import type { Cloud } from "../../roles/cloud/types.ts";
import { resourceNames } from "../../roles/config.ts";
import { JOB_REPORTS_PREFIX } from "../../roles/deployment.ts";
import type { RoleContext } from "../../roles/context.ts";
import { startControllerRole } from "../../roles/controller/index.ts";
import type { JobMessage } from "../../roles/messages.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";
import { freshConfig, startAwsTestRegion, type AwsTestRegion } from "../cloud/clouds.ts";
import { captureLogs } from "../service/support.ts";
import { waitFor } from "../support/waiting.ts";

setDefaultTimeout(60_000);

let aws: AwsTestRegion;
beforeAll(async () => {
  aws = await startAwsTestRegion();
});
afterAll(() => aws?.stop());

test("SQS counts that read 0 while jobs are in hand do not stop the instances holding them; once done, the fleet goes to 0", async () => {
  const config = freshConfig({ scaleInAfterMs: 1000, controllerIntervalMs: 100, visibilityTimeoutSeconds: 30 });
  const names = resourceNames(config);
  const sqs = new SQSClient({});
  for (const queue of [names.reqQueue, names.respQueue, names.deadLetterQueue]) await sqs.send(new CreateQueueCommand({ QueueName: queue }));
  for (const bucket of [names.inBucket, names.reportsBucket]) await new S3Client({ forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: bucket }));

  const busy = new Set<string>();
  const stoppedMidJob: string[] = [];
  const base = awsCloud(config);
  // In-process instances have no instance ARN: their reports are keyed by id, in the same S3 bucket.
  const cloud: Cloud = {
    ...base,
    reports: new BucketJobReports(base.blobs.bucket(names.reportsBucket), async (instanceId) => `${JOB_REPORTS_PREFIX}${instanceId}`),
    fleet: new LocalFleet(async (instanceId) => {
      const app = startAppRole(context, {
        analyzer: {
          async analyze() {
            busy.add(instanceId);
            await Bun.sleep(2000);
            busy.delete(instanceId);
            return { faces: [], width: 1, height: 1, timings: { decodeMs: 0, detectMs: 0, alignMs: 0, embedMs: 0 } };
          },
        },
        cache: new AnalysisCache(0),
        threshold: { at: () => 0.5 },
        slots: 1,
        instanceId,
      });
      return {
        async stop() {
          if (busy.has(instanceId)) stoppedMidJob.push(instanceId);
          await app.stop();
        },
      };
    }),
  };
  const context: RoleContext = { config, names, cloud, log: captureLogs().logger, metrics: new ServiceMetrics() };
  await cloud.blobs.bucket(names.inBucket).put("job/image.jpg", "not really an image");
  const requests = cloud.queues.queue(names.reqQueue);
  for (let i = 0; i < 2; i++) {
    const job: JobMessage = { kind: "recognize", jobId: `job-${i}`, replyTo: names.respQueue, inputKey: "job/image.jpg", name: `n${i}`, sha256: `${i}`.repeat(64), mode: "closed" };
    await requests.send(JSON.stringify(job));
  }

  const controller = startControllerRole(context);
  try {
    await waitFor("both jobs in hand", () => (busy.size === 2 ? true : undefined), 15_000);
    // From now on every count reads 0, as SQS's may while the jobs are in flight.
    aws.region.s3sqs.sqs.approximateCounts = { lagMs: 0, lowFraction: 1 };
    const fleet = cloud.fleet;
    await waitFor("the fleet stopped", async () => ((await fleet.list()).every((instance) => instance.state === "stopped") ? true : undefined), 20_000);
    expect(stoppedMidJob).toEqual([]);
  } finally {
    aws.region.s3sqs.sqs.approximateCounts = { lagMs: 0, lowFraction: 0 };
    await controller.stop();
  }
});
