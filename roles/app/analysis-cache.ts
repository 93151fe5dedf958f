/**
 * Content-hash cache of image analyses: an identical image is never run through the networks twice, not even at the
 * same time. LRU-bounded.
 *
 * Jobs of an image whose analysis is under way wait for that analysis rather than start their own. It goes on as
 * long as one of them still wants it: a job that gives up (its deadline) only stops waiting, and the analysis is
 * abandoned when the last one does. A failure is not remembered. An ImageError is the image's own, so every waiting
 * job gets it; any other failure (a worker crash, storage) belongs to the job that ran the analysis, and the next
 * waiting job runs its own.
 */
import { ImageError, type ImageAnalysis } from "../../model/types.ts";

/** Runs one analysis; it is abandoned when `signal` aborts. */
export type Analysis = (signal: AbortSignal) => Promise<ImageAnalysis>;

export interface CachedAnalysis {
  analysis: ImageAnalysis;
  /** Whether this call ran the analysis (rather than finding it remembered or made for another job). */
  computed: boolean;
}

interface InFlight {
  analysis: Promise<ImageAnalysis>;
  /** Calls waiting for it. */
  waiting: number;
  abandon: AbortController;
}

export class AnalysisCache {
  private readonly entries = new Map<string, ImageAnalysis>();
  private readonly inFlight = new Map<string, InFlight>();

  /** `capacity` 0 turns the cache off: every call runs its own analysis. */
  constructor(private readonly capacity = 10_000) {}

  /** The analysis of the image with content hash `sha256`: remembered, being made for another call, or made now by `analyze`. */
  async analysis(sha256: string, analyze: Analysis, signal: AbortSignal = new AbortController().signal): Promise<CachedAnalysis> {
    if (this.capacity === 0) return { analysis: await analyze(signal), computed: true };
    for (;;) {
      const remembered = this.entries.get(sha256);
      if (remembered) {
        this.entries.delete(sha256);
        this.entries.set(sha256, remembered);
        return { analysis: remembered, computed: false };
      }
      // Aborted already: no analysis is started that nobody would wait for.
      if (signal.aborted) throw signal.reason;
      let flight = this.inFlight.get(sha256);
      const computed = !flight;
      flight ??= this.start(sha256, analyze);
      try {
        return { analysis: await this.wait(flight, sha256, signal), computed };
      } catch (error) {
        if (computed || error instanceof ImageError || signal.aborted) throw error;
      }
    }
  }

  private start(sha256: string, analyze: Analysis): InFlight {
    const abandon = new AbortController();
    const flight: InFlight = { analysis: analyze(abandon.signal), waiting: 0, abandon };
    this.inFlight.set(sha256, flight);
    flight.analysis.then(
      (analysis) => {
        this.forget(sha256, flight);
        this.remember(sha256, analysis);
      },
      () => this.forget(sha256, flight),
    );
    return flight;
  }

  /** Waits for `flight` until it settles or `signal` aborts; the last waiter to give up abandons it. */
  private async wait(flight: InFlight, sha256: string, signal: AbortSignal): Promise<ImageAnalysis> {
    if (signal.aborted) throw signal.reason;
    flight.waiting++;
    let gaveUp = false;
    let giveUp = () => {};
    const abandoned = new Promise<never>((_, reject) => {
      giveUp = () => {
        gaveUp = true;
        reject(signal.reason);
        if (--flight.waiting > 0) return;
        this.forget(sha256, flight);
        flight.abandon.abort(signal.reason);
      };
      signal.addEventListener("abort", giveUp, { once: true });
    });
    try {
      return await Promise.race([flight.analysis, abandoned]);
    } finally {
      signal.removeEventListener("abort", giveUp);
      if (!gaveUp) flight.waiting--;
    }
  }

  private forget(sha256: string, flight: InFlight): void {
    if (this.inFlight.get(sha256) === flight) this.inFlight.delete(sha256);
  }

  private remember(sha256: string, analysis: ImageAnalysis): void {
    this.entries.delete(sha256);
    this.entries.set(sha256, analysis);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}
