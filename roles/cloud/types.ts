/** The narrow interfaces through which facefleet touches the cloud. Each has an AWS and a local implementation. */
import type { JobReport } from "../messages.ts";

export type { JobReport };

/** One bucket of objects. */
export interface Bucket {
  readonly name: string;
  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<void>;
  /**
   * Stores what `body` yields as it arrives, reading it no faster than the store takes it, and holding no more of it
   * than one write needs. The object exists only once the stream has ended: if the stream errors, nothing is stored
   * (any partial write is removed) and the stream's error is thrown.
   */
  putStream(key: string, body: ReadableStream<Uint8Array>, options?: PutOptions): Promise<void>;
  /** undefined when the key does not exist. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** A version tag that changes whenever the object changes; undefined when it does not exist. */
  version(key: string): Promise<string | undefined>;
  /** The user metadata stored with the object; undefined when it does not exist. */
  metadata(key: string): Promise<Record<string, string> | undefined>;
  delete(key: string): Promise<void>;
  count(): Promise<number>;
  /**
   * The keys that start with `prefix` and sort after `startAfter` (S3's ListObjectsV2 Prefix and StartAfter), in
   * ascending order of their UTF-8 bytes, every page of them. The file bucket lists only keys short enough to be their
   * own file name (about 200 characters once percent-encoded); the gallery's keys are.
   */
  list(prefix: string, startAfter?: string): Promise<string[]>;
  /** The object's bytes and the version they are, read together; undefined when it does not exist. */
  read(key: string): Promise<VersionedObject | undefined>;
  /**
   * A compare-and-swap put: writes only while the object is still at version `expected` (S3's If-Match), or, with
   * `expected` undefined, only if it does not exist (If-None-Match: *). Conditional puts of one key are atomic with
   * respect to each other. Returns the new version, or undefined when the condition did not hold and nothing was
   * written (another writer came first: read again).
   */
  putIf(key: string, body: Uint8Array | string, expected: string | undefined, options?: PutOptions): Promise<string | undefined>;
}

export interface VersionedObject {
  body: Uint8Array;
  version: string;
}

export interface PutOptions {
  contentType?: string;
  /** Small ASCII key/value pairs (S3 allows 2 KB in all). */
  metadata?: Record<string, string>;
}

export interface BlobStore {
  bucket(name: string): Bucket;
}

export interface ReceivedMessage {
  messageId: string;
  body: string;
  receiptHandle: string;
  /** How many times this message has been received, this time included. */
  receiveCount: number;
}

export interface QueueDepth {
  visible: number;
  inFlight: number;
}

/** One queue with SQS semantics: at-least-once delivery, visibility timeout, redelivery, 1 KiB bodies here. */
export interface JobQueue {
  readonly name: string;
  send(body: string): Promise<string>;
  /** Long-polls for up to waitSeconds; returns as soon as any message is visible. */
  receive(options: { maxMessages: number; waitSeconds: number; visibilityTimeoutSeconds?: number; signal?: AbortSignal }): Promise<ReceivedMessage[]>;
  delete(receiptHandle: string): Promise<void>;
  changeVisibility(receiptHandle: string, seconds: number): Promise<void>;
  depth(): Promise<QueueDepth>;
}

export interface QueueService {
  queue(name: string): JobQueue;
}

export type InstanceState = "pending" | "running" | "stopping" | "stopped" | "shutting-down" | "terminated";

export interface AppInstance {
  id: string;
  state: InstanceState;
  /** Why a stopped or shutting-down instance went down, as EC2 names it (StateReason code, e.g. Client.InternalError); local fleets: none. */
  stateReason?: string;
}

/**
 * The app instances of this deployment. A launch or start may get fewer instances than asked, as EC2 gives what its
 * quota and capacity allow; when it can give none, the call throws a CapacityError.
 */
export interface Fleet {
  /** Every instance not yet terminated. */
  list(): Promise<AppInstance[]>;
  /** The ids of the instances launched: up to `count`. */
  launch(count: number): Promise<string[]>;
  /** The ids that started: all, or those the capacity allowed (only stopped instances start; others are left as they are). */
  start(ids: string[]): Promise<string[]>;
  stop(ids: string[]): Promise<void>;
  terminate(ids: string[]): Promise<void>;
}

/**
 * What each app instance says about the jobs it holds: exact where the queue's counts are approximate (SQS's may lag
 * or read low for up to a minute), so scale-in can wait until no instance holds a job.
 */
export interface JobReports {
  /** Writes an instance's report over its previous one; an app instance writes only its own. */
  write(report: JobReport): Promise<void>;
  /** The latest report of each of these instances that has one. */
  read(instanceIds: string[]): Promise<JobReport[]>;
  remove(instanceId: string): Promise<void>;
}

/** Everything a role needs from the cloud. */
export interface Cloud {
  blobs: BlobStore;
  queues: QueueService;
  fleet: Fleet;
  reports: JobReports;
}

/**
 * The cloud could not give one more instance now: the account's vCPU quota (VcpuLimitExceeded) or a zone without
 * machines of the type (InsufficientInstanceCapacity). It passes: try again later, not at once.
 */
export class CapacityError extends Error {
  override name = "CapacityError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class MessageTooLargeError extends Error {
  constructor(size: number, limit: number) {
    super(`message of ${size} bytes exceeds the queue's limit of ${limit} bytes`);
    this.name = "MessageTooLargeError";
  }
}

/** An object key no bucket accepts: empty, or with a "." or ".." segment, which HTTP stacks may resolve away. */
export class InvalidKeyError extends Error {
  constructor(key: string) {
    super(`invalid object key ${JSON.stringify(key.slice(0, 100))}: empty, or with a "." or ".." path segment`);
    this.name = "InvalidKeyError";
  }
}
