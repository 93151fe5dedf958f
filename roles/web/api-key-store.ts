/**
 * Recognition keys: credentials the admin hands to a client that may recognize but never change the gallery
 * (which routes: `key-scope.ts`). A key is `ffk_<id>_<secret>`: a public id of 12 hex digits and 32 random bytes. Only
 * its SHA-256 is stored, with the id, a name and the time it was made, in one document of the input bucket
 * (API_KEYS_KEY; a file of the data directory in the embedded mode), rewritten with a conditional put so two writers
 * never lose each other's change. The key itself is shown once, in the answer that creates it.
 *
 * Revocation: the process that revokes a key drops it before it answers; any other process sharing the bucket
 * re-reads the document every `refreshMs` (KEY_REFRESH_MS), so a revoked key works nowhere past that bound.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import type { Bucket } from "../cloud/types.ts";
import { API_KEYS_KEY } from "../deployment.ts";
import { errorFields, type Logger } from "../log.ts";
import { displayableName } from "./api-schemas.ts";

/** How often a process looks at the stored keys again: the bound on a revocation made by another process. */
const KEY_REFRESH_MS = 5_000;
/** Keys at most: each is under 200 bytes stored, and every request with a key reads the document's copy in memory. */
export const MAX_KEYS = 1_000;
const MAX_SAVE_ATTEMPTS = 10;

const KEY_FORMAT = /^ffk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$/;

export const KeyIdSchema = Type.String({ pattern: "^[0-9a-f]{12}$", description: "the key's public id, also the start of the key" });
export const KeyNameSchema = Type.String({
  minLength: 1,
  maxLength: 64,
  // Names go into logs and the operator's view.
  pattern: displayableName(),
  description: "what the key is for, e.g. the client's name",
});

const StoredKeySchema = Type.Object({
  id: KeyIdSchema,
  // Not KeyNameSchema: a name stored under an older, looser pattern must not make every key unreadable.
  name: Type.String({ minLength: 1, maxLength: 64 }),
  sha256: Type.String({ pattern: "^[0-9a-f]{64}$" }),
  createdAt: Type.String(),
});
type StoredKey = Static<typeof StoredKeySchema>;
const StoredKeysSchema = Type.Object({ keys: Type.Array(StoredKeySchema, { maxItems: MAX_KEYS }) });

interface KeySummary {
  id: string;
  name: string;
  createdAt: string;
  /** The last request this process saw carry the key (ISO time; refused for its route or not), null if none since it started. */
  lastUsedAt: string | null;
}

export class TooManyKeysError extends Error {
  override name = "TooManyKeysError";
}

const sha256 = (text: string) => createHash("sha256").update(text).digest();

export class ApiKeyStore {
  private keys = new Map<string, StoredKey>();
  private version: string | undefined;
  private readonly lastUsed = new Map<string, number>();
  private timer: ReturnType<typeof setInterval> | undefined;
  /** Reads and writes one at a time, so a re-read that began before a revocation cannot bring the key back. */
  private turn: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly bucket: Bucket,
    private readonly log: Logger,
  ) {}

  /** Reads the stored keys (none yet: an empty set, nothing written) and re-reads them every `refreshMs`. */
  static async open(bucket: Bucket, log: Logger, refreshMs = KEY_REFRESH_MS): Promise<ApiKeyStore> {
    const store = new ApiKeyStore(bucket, log);
    await store.refresh();
    store.timer = setInterval(() => {
      store.refresh().catch((error) => log.warn("api_keys_refresh_failed", errorFields(error)));
    }, refreshMs);
    store.timer.unref();
    return store;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * The id of the live key `presented` is, else undefined. The digest comparison takes the same time wherever the
   * bytes differ; the id is public, so finding it by id tells nothing.
   */
  verify(presented: string, now = Date.now()): string | undefined {
    const id = KEY_FORMAT.exec(presented)?.[1];
    const stored = id === undefined ? undefined : this.keys.get(id);
    if (!stored || !timingSafeEqual(sha256(presented), Buffer.from(stored.sha256, "hex"))) return undefined;
    this.lastUsed.set(stored.id, now);
    return stored.id;
  }

  list(): KeySummary[] {
    return [...this.keys.values()].map(({ id, name, createdAt }) => {
      const used = this.lastUsed.get(id);
      return { id, name, createdAt, lastUsedAt: used === undefined ? null : new Date(used).toISOString() };
    });
  }

  /** Makes a key; its text is in this answer and nowhere else. */
  async create(name: string, now = new Date()): Promise<{ key: string; summary: KeySummary }> {
    const id = randomBytes(6).toString("hex");
    const key = `ffk_${id}_${randomBytes(32).toString("base64url")}`;
    const stored: StoredKey = { id, name, sha256: sha256(key).toString("hex"), createdAt: now.toISOString() };
    await this.change((keys) => {
      if (keys.length >= MAX_KEYS) throw new TooManyKeysError(`there are ${MAX_KEYS} keys already, the most there may be: revoke one first`);
      return [...keys, stored];
    });
    this.log.info("api_key_created", { keyId: id, name });
    return { key, summary: { id, name, createdAt: stored.createdAt, lastUsedAt: null } };
  }

  /** Removes a key; false when there is none with this id. Once it returns, this process accepts the key no more. */
  async revoke(id: string): Promise<boolean> {
    let found = false;
    await this.change((keys) => {
      found = keys.some((key) => key.id === id);
      return found ? keys.filter((key) => key.id !== id) : undefined;
    });
    if (found) this.log.info("api_key_revoked", { keyId: id });
    return found;
  }

  /** Takes the stored document in hand when it changed since the last read. */
  refresh(): Promise<void> {
    return this.inTurn(async () => {
      const stored = await this.bucket.read(API_KEYS_KEY);
      if (stored?.version === this.version) return;
      this.take(stored ? this.parse(stored.body) : [], stored?.version);
    });
  }

  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const done = this.turn.then(work);
    this.turn = done.catch(() => {});
    return done;
  }

  /** `edit` gets the stored keys and returns them changed, or undefined for no change; retried over a newer version. */
  private change(edit: (keys: StoredKey[]) => StoredKey[] | undefined): Promise<void> {
    return this.inTurn(() => this.save(edit));
  }

  private async save(edit: (keys: StoredKey[]) => StoredKey[] | undefined): Promise<void> {
    for (let attempt = 0; attempt < MAX_SAVE_ATTEMPTS; attempt++) {
      const stored = await this.bucket.read(API_KEYS_KEY);
      const keys = stored ? this.parse(stored.body) : [];
      const changed = edit(keys);
      if (changed === undefined) return this.take(keys, stored?.version);
      const body = JSON.stringify({ keys: changed } satisfies Static<typeof StoredKeysSchema>);
      const version = await this.bucket.putIf(API_KEYS_KEY, body, stored?.version, { contentType: "application/json" });
      if (version !== undefined) return this.take(changed, version);
    }
    throw new Error(`the stored keys changed under ${MAX_SAVE_ATTEMPTS} writes in a row`);
  }

  private take(keys: StoredKey[], version: string | undefined): void {
    this.keys = new Map(keys.map((key) => [key.id, key]));
    this.version = version;
    for (const id of this.lastUsed.keys()) if (!this.keys.has(id)) this.lastUsed.delete(id);
  }

  /** A document that is not the stored keys counts as none (every key refused) until the next write replaces it. */
  private parse(body: Uint8Array): StoredKey[] {
    try {
      const value: unknown = JSON.parse(new TextDecoder().decode(body));
      if (Value.Check(StoredKeysSchema, value)) return value.keys;
    } catch {
      // not JSON: as unreadable as JSON of another shape
    }
    this.log.error("api_keys_unreadable", { key: API_KEYS_KEY });
    return [];
  }
}
