// The request tap in front of the S3/SQS emulator, in the emulator's process: more requests at once than Bun runs
// fetches in a process (256) are all answered. A tap that fetched from the emulator, which itself fetches from fauxqs,
// deadlocked there (the fleet test's burst once stalled every S3 call for 60 s).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startS3AndSqs, type S3SqsEmulator } from "../../infra/sim/fauxqs.ts";
import { startRequestTap, type RequestTap } from "../../infra/sim/request-tap.ts";

/** More than the 256 fetches Bun runs at once in a process. */
const AT_ONCE = 400;

let emulator: S3SqsEmulator;
let tap: RequestTap;
let tapped = 0;

beforeAll(async () => {
  emulator = await startS3AndSqs();
  tap = startRequestTap(emulator.handle, () => void tapped++);
});

afterAll(async () => {
  await tap?.stop();
  await emulator?.stop();
});

test(`${AT_ONCE} requests at once through the tap are all answered, as the emulator answers them`, async () => {
  // The callers are another process, as the instances are: their fetches are not this process's.
  const callers = Bun.spawn(
    [
      process.execPath,
      "-e",
      `const answers = await Promise.all(Array.from({ length: ${AT_ONCE} }, (_, i) => fetch("${tap.endpoint}/no-such-bucket/key-" + i).then((r) => r.status)));
       console.log(JSON.stringify(answers));`,
    ],
    { stdout: "pipe", stderr: "inherit" },
  );
  const finished = await Promise.race([callers.exited, Bun.sleep(20_000).then(() => "stalled" as const)]);
  if (finished === "stalled") callers.kill();
  expect(finished).toBe(0);
  const statuses = JSON.parse(await new Response(callers.stdout).text()) as number[];
  expect(statuses).toHaveLength(AT_ONCE);
  expect(new Set(statuses)).toEqual(new Set([404]));
  expect(tapped).toBe(AT_ONCE);
}, 30_000);
