// The analysis cache shares an analysis under way: jobs of one image wait for the one analysis, a failure is not
// remembered, and a job that gives up does not take the analysis from the others.
import { describe, expect, test } from "bun:test";
import { ImageError, type ImageAnalysis } from "../../model/types.ts";
import { AnalysisCache, type Analysis } from "../../roles/app/analysis-cache.ts";

const SHA = "a".repeat(64);
const analysisOf = (width: number): ImageAnalysis => ({ width, height: 1, faces: [], timings: { decodeMs: 0, detectMs: 0, alignMs: 0, embedMs: 0 } });

/** An analysis that answers when told to, and records the signal it was given. */
function controlled() {
  const runs: { signal: AbortSignal; answer(analysis: ImageAnalysis): void; fail(error: Error): void }[] = [];
  const analyze: Analysis = (signal) =>
    new Promise((answer, fail) => {
      runs.push({ signal, answer, fail });
    });
  return { runs, analyze };
}

describe("the analysis cache", () => {
  test("concurrent calls for one image run one analysis; every caller gets it, one of them as its own", async () => {
    const cache = new AnalysisCache();
    const { runs, analyze } = controlled();
    const calls = Array.from({ length: 10 }, () => cache.analysis(SHA, analyze));
    expect(runs).toHaveLength(1);
    runs[0]!.answer(analysisOf(7));
    const results = await Promise.all(calls);
    expect(results.map((r) => r.analysis.width)).toEqual(Array(10).fill(7));
    expect(results.filter((r) => r.computed)).toHaveLength(1);
    expect(await cache.analysis(SHA, analyze)).toEqual({ analysis: analysisOf(7), computed: false });
    expect(runs).toHaveLength(1);
  });

  test("a fault is not remembered and is the caller's alone: the next waiting caller runs its own analysis", async () => {
    const cache = new AnalysisCache();
    const { runs, analyze } = controlled();
    const first = cache.analysis(SHA, analyze);
    const second = cache.analysis(SHA, analyze);
    const third = cache.analysis(SHA, analyze);
    runs[0]!.fail(new Error("the worker crashed"));
    expect(((await first.catch((e: unknown) => e)) as Error).message).toBe("the worker crashed");
    await Bun.sleep(0);
    expect(runs).toHaveLength(2);
    runs[1]!.answer(analysisOf(3));
    expect([(await second).analysis.width, (await third).analysis.width]).toEqual([3, 3]);
    expect(runs).toHaveLength(2);
  });

  test("an image error reaches every waiting caller and is not remembered", async () => {
    const cache = new AnalysisCache();
    const { runs, analyze } = controlled();
    const calls = [cache.analysis(SHA, analyze), cache.analysis(SHA, analyze)];
    runs[0]!.fail(new ImageError("truncated", "cut short"));
    for (const call of calls) expect(((await call.catch((e: unknown) => e)) as ImageError).code).toBe("truncated");
    expect(runs).toHaveLength(1);
    const again = cache.analysis(SHA, analyze);
    expect(runs).toHaveLength(2);
    runs[1]!.answer(analysisOf(5));
    expect((await again).analysis.width).toBe(5);
  });

  test("the caller that started the analysis gives up: it stops waiting, the analysis goes on for the others", async () => {
    const cache = new AnalysisCache();
    const { runs, analyze } = controlled();
    const holder = new AbortController();
    const first = cache.analysis(SHA, analyze, holder.signal);
    const second = cache.analysis(SHA, analyze);
    holder.abort(new Error("past its deadline"));
    expect(((await first.catch((e: unknown) => e)) as Error).message).toBe("past its deadline");
    expect(runs[0]!.signal.aborted).toBe(false);
    runs[0]!.answer(analysisOf(9));
    expect(await second).toEqual({ analysis: analysisOf(9), computed: false });
  });

  test("when every caller has given up, the analysis is abandoned and the next caller starts afresh", async () => {
    const cache = new AnalysisCache();
    const { runs, analyze } = controlled();
    const callers = [new AbortController(), new AbortController()];
    const calls = callers.map((caller) => cache.analysis(SHA, analyze, caller.signal).catch((e: unknown) => e));
    callers[0]!.abort(new Error("gone"));
    expect(runs[0]!.signal.aborted).toBe(false);
    callers[1]!.abort(new Error("gone too"));
    expect(runs[0]!.signal.aborted).toBe(true);
    expect(((await calls[1]) as Error).message).toBe("gone too");
    const fresh = cache.analysis(SHA, analyze);
    expect(runs).toHaveLength(2);
    runs[1]!.answer(analysisOf(4));
    expect(await fresh).toEqual({ analysis: analysisOf(4), computed: true });
  });

  test("off (capacity 0): every call runs its own analysis, with the caller's signal", async () => {
    const cache = new AnalysisCache(0);
    const { runs, analyze } = controlled();
    const caller = new AbortController();
    const calls = [cache.analysis(SHA, analyze, caller.signal), cache.analysis(SHA, analyze)];
    expect(runs).toHaveLength(2);
    expect(runs[0]!.signal).toBe(caller.signal);
    runs.forEach((run, index) => run.answer(analysisOf(index + 1)));
    expect((await Promise.all(calls)).map((r) => r.analysis.width)).toEqual([1, 2]);
  });
});
