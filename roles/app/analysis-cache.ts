/** Content-hash cache of image analyses: an identical image is never run through the networks twice. LRU-bounded. */
import type { ImageAnalysis } from "../../model/types.ts";

export class AnalysisCache {
  private readonly entries = new Map<string, ImageAnalysis>();
  hits = 0;
  misses = 0;

  constructor(private readonly capacity = 10_000) {}

  get(sha256: string): ImageAnalysis | undefined {
    const analysis = this.entries.get(sha256);
    if (!analysis) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(sha256);
    this.entries.set(sha256, analysis);
    return analysis;
  }

  set(sha256: string, analysis: ImageAnalysis): void {
    if (this.capacity === 0) return;
    this.entries.delete(sha256);
    this.entries.set(sha256, analysis);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}
