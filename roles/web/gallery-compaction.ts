/**
 * The gallery writer's compactions: a check every GALLERY_COMPACTION_CHECK_MS (a full log, a removal near its erasure
 * bound), and one SEAL_IDLE_MS after the last change, when the writer has gone idle. The decision is `compactionDue`'s.
 */
import { SEAL_IDLE_MS, type GalleryWriter } from "../gallery-store.ts";
import { errorFields, type Logger } from "../log.ts";

/** How often the web role asks whether the gallery is due a compaction. */
export const GALLERY_COMPACTION_CHECK_MS = 60_000;
/** Past SEAL_IDLE_MS, so the timer's check finds the writer idle that long whatever the clocks' rounding. */
const IDLE_CHECK_DELAY_MS = SEAL_IDLE_MS + 100;

export interface GalleryCompaction {
  /** The writer stored a change: look again once it has been idle for SEAL_IDLE_MS. */
  changed(): void;
  stop(): void;
}

export function startGalleryCompaction(gallery: GalleryWriter, eraseWithinMs: number, log: Logger): GalleryCompaction {
  const check = () => {
    gallery
      .compactIfDue(Date.now(), eraseWithinMs, GALLERY_COMPACTION_CHECK_MS)
      .catch((error) => log.error("gallery_compaction_failed", errorFields(error)));
  };
  const periodic = setInterval(check, GALLERY_COMPACTION_CHECK_MS);
  let idle: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  return {
    changed() {
      // A change that finishes while the role stops arms nothing: no compaction starts after stop().
      if (stopped) return;
      clearTimeout(idle);
      idle = setTimeout(check, IDLE_CHECK_DELAY_MS);
    },
    stop() {
      stopped = true;
      clearInterval(periodic);
      clearTimeout(idle);
    },
  };
}
