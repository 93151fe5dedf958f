import { describe, expect, test } from "bun:test";
import { MemoryQueueService } from "../../roles/cloud/local/memory-queue.ts";
import { DeadLetterDrain, decideDeadLetter, KEEP_HIDDEN_SECONDS, TAKEN_SECONDS, type DeadLetterDecision } from "../../roles/controller/dead-letters.ts";
import { MAX_JOB_MESSAGE_BYTES, MAX_NAME_BYTES } from "../../roles/deployment.ts";
import { MAX_CANDIDATES, MAX_FACES, type JobMessage } from "../../roles/messages.ts";
import { ServiceMetrics } from "../../roles/metrics.ts";
import { captureLogs } from "../support/logs.ts";

const NOW = 1_764_590_000_000;
const job = (fields: Partial<JobMessage> = {}): JobMessage => ({ kind: "recognize", jobId: "job-1", replyTo: "replies", inputKey: "req/photo.jpg", name: "photo", sha256: "0".repeat(64), mode: "closed", ...fields });
const body = (fields: Partial<JobMessage> = {}) => JSON.stringify(job(fields));

describe("what to do with one dead-lettered message", () => {
  test.each<[string, string, number, Partial<DeadLetterDecision> & { action: DeadLetterDecision["action"] }]>([
    ["a job never redriven: sent again, redrive 1", body(), 2, { action: "redrive", job: job({ redrives: 1 }) }],
    ["a job redriven once of two: sent again, redrive 2", body({ redrives: 1 }), 2, { action: "redrive", job: job({ redrives: 2 }) }],
    ["a job redriven as often as allowed: answered job_failed, a marked copy kept", body({ redrives: 2 }), 2, { action: "fail", job: job({ redrives: 2 }), kept: job({ redrives: 2, failedAt: NOW }) }],
    ["no redrives allowed: answered at once", body(), 0, { action: "fail", kept: job({ failedAt: NOW }) }],
    ["a kept copy (answered already): left, never redriven or answered again", body({ redrives: 2, failedAt: NOW - 1 }), 2, { action: "keep", jobId: "job-1" }],
    ["a kept copy, even with redrives to spare (maxRedrives raised since): left", body({ failedAt: NOW - 1 }), 5, { action: "keep", jobId: "job-1" }],
    ["not JSON: left for the operator", "not a job", 2, { action: "keep", reason: expect.stringContaining("malformed") }],
    ["JSON, not a job: left for the operator", JSON.stringify({ jobId: "job-1" }), 2, { action: "keep", reason: expect.stringContaining("malformed") }],
  ])("%s", (_, message, maxRedrives, expected) => {
    expect(decideDeadLetter(message, maxRedrives, NOW)).toMatchObject(expected);
  });

  test("the failure answer is job_failed for the job's caller, and a malformed message says why it is kept", () => {
    const failed = decideDeadLetter(body({ redrives: 1 }), 1, NOW);
    expect(failed).toMatchObject({ action: "fail", reply: { ok: false, jobId: "job-1", error: { code: "job_failed" } } });
    expect(decideDeadLetter("{", 1, NOW).reason).toContain("malformed: message body is not JSON");
  });

  test("the largest job message, redriven and then kept, still fits the queues' limit", () => {
    // Every field at its longest, and the name in characters JSON escapes twofold.
    const largest = job({
      kind: "faces",
      jobId: "j".repeat(36),
      replyTo: `${"p".repeat(41)}-resp-queue`,
      inputKey: `${"r".repeat(36)}/19-${"f".repeat(120)}`,
      name: '"'.repeat(MAX_NAME_BYTES),
      faces: { k: MAX_CANDIDATES, maxFaces: MAX_FACES, minScore: 0.123456789012345, embedding: true },
      enrollFace: "largest",
    });
    const redriven = decideDeadLetter(JSON.stringify({ ...largest, redrives: 99 }), 100, NOW);
    expect(redriven.action).toBe("redrive");
    const kept = decideDeadLetter(JSON.stringify({ ...largest, redrives: 100 }), 100, NOW);
    if (kept.action !== "fail") throw new Error("expected fail");
    expect(Buffer.byteLength(JSON.stringify(kept.kept))).toBeLessThanOrEqual(MAX_JOB_MESSAGE_BYTES);
  });
});

describe("the drain", () => {
  function drainOn(maxRedrives: number) {
    const queues = new MemoryQueueService({ visibilityTimeoutSeconds: 30, maxReceives: 3, deadLetterQueue: "dead" });
    const logs = captureLogs();
    const metrics = new ServiceMetrics();
    const drain = new DeadLetterDrain({ deadLetterQueue: queues.queue("dead"), requestQueue: queues.queue("requests"), queues, maxRedrives, log: logs.logger, metrics, now: () => NOW });
    return { queues, logs, metrics, drain };
  }
  test("redrives a job as a new message, then answers job_failed once and keeps one marked copy, hidden between looks; logs each decision's inputs", async () => {
    const { queues, logs, metrics, drain } = drainOn(1);
    const dead = queues.queue("dead");
    const requests = queues.queue("requests");
    const replies = queues.queue("replies");
    await dead.send(body());

    expect((await drain.drainOnce(0)).map((decision) => decision.action)).toEqual(["redrive"]);
    const [redriven] = await requests.receive({ maxMessages: 10, waitSeconds: 0 });
    expect(JSON.parse(redriven!.body)).toEqual(job({ redrives: 1 }));
    expect(redriven!.receiveCount).toBe(1);
    expect(await dead.depth()).toEqual({ visible: 0, inFlight: 0 });

    // Dead-lettered again, past its last redrive.
    await dead.send(redriven!.body);
    expect((await drain.drainOnce(0)).map((decision) => decision.action)).toEqual(["fail"]);
    const answers = await replies.receive({ maxMessages: 10, waitSeconds: 0 });
    expect(answers.map((answer) => JSON.parse(answer.body))).toEqual([{ ok: false, jobId: "job-1", error: expect.objectContaining({ code: "job_failed" }) }]);
    // The next look finds the kept copy: hidden for KEEP_HIDDEN_SECONDS, not answered again.
    expect((await drain.drainOnce(0)).map((decision) => decision.action)).toEqual(["keep"]);
    expect(await drain.drainOnce(0)).toEqual([]);
    expect(await dead.depth()).toEqual({ visible: 0, inFlight: 1 });
    expect(await replies.receive({ maxMessages: 10, waitSeconds: 0 })).toEqual([]);
    expect(await requests.depth()).toEqual({ visible: 0, inFlight: 1 });

    const counted = (await metrics.registry.getSingleMetric("facefleet_dead_letters_total")?.get())?.values.map((sample) => [sample.labels.outcome, sample.value]);
    expect(counted).toEqual([["redriven", 1], ["failed", 1]]);
    const decisions = logs.lines.filter((line) => ["job_redriven", "job_failed", "dead_letter_kept"].includes(line.event as string));
    expect(decisions).toMatchObject([
      { event: "job_redriven", jobId: "job-1", redrives: 1, maxRedrives: 1, receiveCount: 1 },
      { event: "job_failed", jobId: "job-1", redrives: 1, maxRedrives: 1 },
      { event: "dead_letter_kept", jobId: "job-1", reason: "answered job_failed already" },
    ]);
    // SQS refuses a visibility past 12 hours from the receive, which took TAKEN_SECONDS of it.
    expect(TAKEN_SECONDS + KEEP_HIDDEN_SECONDS).toBeLessThan(12 * 60 * 60);
  });

  test("a caller that cannot be answered still gets one kept copy, and the next message of the batch is dealt with", async () => {
    const { queues, logs, drain } = drainOn(0);
    const dead = queues.queue("dead");
    await dead.send(JSON.stringify({ ...job(), replyTo: "gone" }));
    await dead.send(body());
    queues.queue("gone").send = () => Promise.reject(new Error("AWS.SimpleQueueService.NonExistentQueue"));
    expect((await drain.drainOnce(0)).map((decision) => decision.action)).toEqual(["fail", "fail"]);
    expect(logs.lines.filter((line) => line.event === "job_failed_reply_lost")).toHaveLength(1);
    expect((await queues.queue("replies").receive({ maxMessages: 10, waitSeconds: 0 })).map((answer) => JSON.parse(answer.body).jobId)).toEqual(["job-1"]);
    expect(await dead.depth()).toEqual({ visible: 2, inFlight: 0 });
    expect((await drain.drainOnce(0)).map((decision) => decision.action)).toEqual(["keep", "keep"]);
  });

  test("leaves a malformed message in the queue, hidden, and answers nothing", async () => {
    const { queues, drain } = drainOn(2);
    const dead = queues.queue("dead");
    await dead.send("not a job");
    expect((await drain.drainOnce(0)).map((decision) => decision.action)).toEqual(["keep"]);
    expect(await dead.depth()).toEqual({ visible: 0, inFlight: 1 });
    expect(await queues.queue("requests").depth()).toEqual({ visible: 0, inFlight: 0 });
  });

  test("does nothing while it does not hold the lease", async () => {
    const queues = new MemoryQueueService({ visibilityTimeoutSeconds: 30, maxReceives: 3, deadLetterQueue: "dead" });
    const drain = new DeadLetterDrain({ deadLetterQueue: queues.queue("dead"), requestQueue: queues.queue("requests"), queues, maxRedrives: 2, log: captureLogs().logger, metrics: new ServiceMetrics(), mayAct: () => false });
    await queues.queue("dead").send(body());
    drain.start();
    await Bun.sleep(200);
    await drain.stop();
    expect(await queues.queue("dead").depth()).toEqual({ visible: 1, inFlight: 0 });
  });
});
