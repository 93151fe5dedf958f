/**
 * A lease: one object in a bucket that one holder at a time renews with conditional puts (S3 If-None-Match / If-Match),
 * so that of the processes of a deployment that play one part (the controller, the response queue's consumer) only
 * one acts, and one that dies is replaced once its lease has run out.
 *
 * Expiry never compares clocks of two machines: a contender counts a lease as run out once it has seen the same
 * version of the object, unrenewed, for the lease's term on its own clock. The holder counts itself as holding only
 * for the term from the moment it sent its last successful renewal's read, which came before any contender could see
 * that version, so the two never overlap.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { Type, type Static } from "@sinclair/typebox";
import { LEASE_KEYS, LEASE_TERM_MS } from "../deployment.ts";
import { decodeMessage, MessageFormatError } from "../messages.ts";
import { errorFields, type Logger } from "../log.ts";
import type { Bucket } from "./types.ts";

const LeaseRecordSchema = Type.Object({
  holder: Type.String(),
  /** How long the lease holds without a renewal. */
  termMs: Type.Number({ minimum: 1 }),
  /**
   * One more than the record it replaced: each write's body differs, so its version does too (S3's ETag is the
   * body's MD5: a renewal with the same body would look like no renewal).
   */
  serial: Type.Integer({ minimum: 0 }),
  /** Set by a holder that let go: anyone may take it at once. */
  released: Type.Optional(Type.Boolean()),
});
type LeaseRecord = Static<typeof LeaseRecordSchema>;

/** What one try to take or renew the lease found. */
export type LeaseAttempt =
  | { held: true }
  | {
      held: false;
      /** Who holds it (as its record says). */
      holder: string;
      /** The holder renewed it since this contender first saw it: it is alive. */
      renewedSinceSeen: boolean;
      /** When it runs out unless renewed, on this contender's clock. */
      freeInMs: number;
    };

export interface LeaseOptions {
  bucket: Bucket;
  key: string;
  /** Unique to this process (never reused by a restart): a lease held under an old id is not taken for this one's. */
  holder: string;
  termMs: number;
  log?: Logger;
  now?: () => number;
}

export class Lease {
  /** The version and serial of this holder's last write while it holds the lease. */
  private held: { version: string; serial: number } | undefined;
  private heldUntil = -Infinity;
  /** Another holder's version as first seen, and when. */
  private seen: { version: string; at: number } | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private attempt: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: LeaseOptions) {}

  /** A holder renews this often: three tries before its term runs out. */
  get renewEveryMs(): number {
    return this.options.termMs / 3;
  }

  /** Whether this process may act now: it took or renewed the lease less than a term ago. */
  holds(): boolean {
    return this.clock() < this.heldUntil;
  }

  /** One read and, when the lease is free, run out or this holder's, one conditional put. */
  async tryAcquire(): Promise<LeaseAttempt> {
    const { bucket, key, holder, termMs } = this.options;
    const started = this.clock();
    const stored = await bucket.read(key);
    const record = stored && parseRecord(stored.body);
    if (stored && record && !record.released && record.holder !== holder) {
      const renewedSinceSeen = this.seen !== undefined && this.seen.version !== stored.version;
      if (this.seen?.version !== stored.version) this.seen = { version: stored.version, at: started };
      const freeInMs = this.seen.at + record.termMs - started;
      if (freeInMs > 0) return this.notHeld({ held: false, holder: record.holder, renewedSinceSeen, freeInMs });
    }
    const next: LeaseRecord = { holder, termMs, serial: (record?.serial ?? 0) + 1 };
    const version = (await bucket.putIf(key, JSON.stringify(next), stored?.version, { contentType: "application/json" })) ?? (await this.ownWrite(next));
    if (version === undefined) return this.notHeld({ held: false, holder: "(another process, just now)", renewedSinceSeen: true, freeInMs: termMs });
    if (!this.holds()) this.options.log?.info("lease_acquired", { key, holder, termMs });
    this.held = { version, serial: next.serial };
    this.heldUntil = started + termMs;
    this.seen = undefined;
    return { held: true };
  }

  /** Takes the lease when it can and keeps renewing it (or trying) every renewEveryMs until `stop`. */
  start(): void {
    this.running = true;
    const loop = async () => {
      if (!this.running) return;
      this.attempt = this.tryAcquire().catch((error) => this.options.log?.warn("lease_renewal_failed", { key: this.options.key, ...errorFields(error) }));
      await this.attempt;
      if (this.running) this.timer = setTimeout(loop, this.renewEveryMs);
    };
    void loop();
  }

  /**
   * Takes the lease, waiting while its record is unrenewed (a holder that died); refuses, with the holder's name, as
   * soon as the holder renews it (it is alive), or when it stays held for longer than a term and a renewal.
   */
  async acquireOrRefuse(): Promise<{ held: true } | { held: false; holder: string }> {
    const giveUpAt = this.clock() + this.options.termMs + this.renewEveryMs;
    for (;;) {
      const attempt = await this.tryAcquire();
      if (attempt.held) return attempt;
      if (attempt.renewedSinceSeen || this.clock() >= giveUpAt) return { held: false, holder: attempt.holder };
      await Bun.sleep(Math.max(1, Math.min(attempt.freeInMs, this.renewEveryMs / 2)));
    }
  }

  /** Stops renewing and, when it holds the lease, marks it released so the next holder need not wait a term. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.attempt;
    if (!this.holds() || this.held === undefined) return;
    const { bucket, key, holder, termMs } = this.options;
    this.heldUntil = -Infinity;
    const released: LeaseRecord = { holder, termMs, serial: this.held.serial + 1, released: true };
    await bucket.putIf(key, JSON.stringify(released), this.held.version, { contentType: "application/json" }).catch(() => undefined);
    this.options.log?.info("lease_released", { key, holder });
  }

  /**
   * The version of `written` when it is what the object holds: the SDK retries a put whose answer was lost, and the
   * retry of one that had been applied fails its own condition.
   */
  private async ownWrite(written: LeaseRecord): Promise<string | undefined> {
    const stored = await this.options.bucket.read(this.options.key);
    const record = stored && parseRecord(stored.body);
    return record?.holder === written.holder && record.serial === written.serial && !record.released ? stored!.version : undefined;
  }

  private notHeld(attempt: LeaseAttempt): LeaseAttempt {
    if (this.holds()) this.options.log?.warn("lease_lost", { key: this.options.key, holder: this.options.holder });
    this.heldUntil = -Infinity;
    this.held = undefined;
    return attempt;
  }

  private clock(): number {
    return (this.options.now ?? performance.now.bind(performance))();
  }
}

/** A record that is not one counts as released: a lease object nobody can read must not block the deployment. */
function parseRecord(body: Uint8Array): LeaseRecord {
  try {
    return decodeMessage(LeaseRecordSchema, new TextDecoder().decode(body));
  } catch (error) {
    if (error instanceof MessageFormatError) return { holder: "", termMs: 1, serial: 0, released: true };
    throw error;
  }
}

/** The lease of one part of the deployment, held by this process under a name that says where it runs. */
export function deploymentLease(bucket: Bucket, part: keyof typeof LEASE_KEYS, log: Logger): Lease {
  const holder = `${hostname()} pid ${process.pid} (${randomUUID().slice(0, 8)})`;
  return new Lease({ bucket, key: LEASE_KEYS[part], holder, termMs: LEASE_TERM_MS, log });
}
