// scripts/chaos.ts for 2 minutes, as a user runs it: the deployment in the emulated region under sustained load while
// app instances are SIGKILLed and frozen, one instance's S3 path is broken and S3, SQS and EC2 answer throttling and
// 5xx. Every request is answered, to its own caller, nothing is lost or dead-lettered, the fleet stays within its
// maximum, and the controller replaces the broken instance. Scaled to a 2-core CI machine: 4 app instances at most.
import { expect, test } from "bun:test";
import { PEOPLE_DIR } from "../support/fixtures.ts";
import { freePort } from "../support/waiting.ts";
import { runScript } from "./support.ts";

test(
  "2 minutes of chaos: answered = sent, no wrong caller, nothing lost or dead-lettered, within the maximum, the broken instance replaced",
  async () => {
    const run = await runScript("chaos.ts", [
      // The sample set's people with two photos or more: the first enrolled, the others asked about.
      "--people", PEOPLE_DIR,
      "--minutes", "2",
      "--rate", "3",
      "--concurrency", "12",
      "--kill-every", "20",
      "--freeze-every", "30",
      "--freeze-for", "35",
      "--fault-rate", "0.02",
      "--max-instances", "4",
      "--port", String(freePort()),
    ]);
    const figures = run.summary;
    console.log(JSON.stringify(figures));
    if (figures.answered !== figures.sent) console.error(run.stderr.split("\n").filter((line) => !line.startsWith("  ")).slice(-40).join("\n"));
    expect(Object.keys(figures)).toEqual(["sent", "answered", "correct", "wrong_caller", "failed", "lost", "duplicates", "dead_lettered", "kills", "freezes", "max_running", "exceeded_max", "peak_web_rss_mb"]);
    expect(figures.sent).toBeGreaterThan(300);
    expect(figures).toMatchObject({ answered: figures.sent, wrong_caller: 0, failed: 0, lost: 0, dead_lettered: 0, exceeded_max: false });
    expect(figures.correct as number).toBeGreaterThanOrEqual(0.9 * (figures.answered as number));
    expect(figures.kills as number).toBeGreaterThanOrEqual(2);
    expect(figures.freezes as number).toBeGreaterThanOrEqual(1);
    expect(run.stderr).toMatch(/broken instance: i-[0-9a-f]+, replaced by the controller [1-9]\d* time\(s\)/);
  },
  300_000,
);
