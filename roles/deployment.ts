/** Facts of a deployment that the roles and the infrastructure scripts must agree on: one home for each. */
import { Type, type Static } from "@sinclair/typebox";

/** Instance tag naming the roles an instance plays (`web+controller`, `app`). */
export const ROLE_TAG = "Role";
/** Tag on every resource of a deployment; its value is the prefix. */
export const DEPLOYMENT_TAG = "Deployment";
/** `Role` tag value of the app instances the controller scales. */
export const APP_ROLE_TAG_VALUE = "app";
/** The port of the classic contract. */
export const WEB_PORT = 8000;
/** SQS MaximumMessageSize of the request queue: a job carries ids and keys, never image bytes. */
export const MAX_JOB_MESSAGE_BYTES = 1024;
/** SQS's longest long poll, set as the queues' ReceiveMessageWaitTimeSeconds and used by the reply poller. */
export const LONG_POLL_SECONDS = 20;
/**
 * The gallery in the gallery bucket (roles/gallery-store.ts): a manifest naming immutable segments, and a log of
 * changes after them, one create-only object per change. The web role writes all three; the app instances read them.
 */
export const GALLERY_PREFIX = "gallery/";
export const GALLERY_MANIFEST_KEY = `${GALLERY_PREFIX}manifest.json`;
export const GALLERY_SEGMENT_PREFIX = `${GALLERY_PREFIX}segments/`;
export const GALLERY_LOG_PREFIX = `${GALLERY_PREFIX}log/`;
/** The gallery as one blob, as versions before the segmented store kept it: migrated once by the web role, then deleted. */
export const LEGACY_GALLERY_KEY = `${GALLERY_PREFIX}gallery.bin`;
/**
 * Where the web role keeps a legacy gallery it cannot read, beside it in the gallery bucket (this prefix, then the time
 * it found it), before it starts with an empty one.
 */
export const UNREADABLE_GALLERY_KEY_PREFIX = `${LEGACY_GALLERY_KEY}.unreadable-`;
/** An app instance puts an enrollment's embedding under this prefix of the gallery bucket for the web role to take. */
export const EMBEDDING_KEY_PREFIX = "embeddings/";
/** The key of a job's embedding: the web role takes this key of its own job, and no other. */
export const embeddingKey = (jobId: string): string => `${EMBEDDING_KEY_PREFIX}${jobId}.f32`;
/**
 * An app instance leaves a faces result too large for its reply under this prefix of the output bucket; the web role
 * reads and deletes it, and may touch nothing else there.
 */
export const API_RESULT_KEY_PREFIX = "api/";
/** The key of a job's faces result: the web role reads this key of its own job, and no other. */
export const apiResultKey = (jobId: string): string => `${API_RESULT_KEY_PREFIX}${jobId}.json`;
/**
 * A faces result waits under API_RESULT_KEY_PREFIX for the web role, which reads and deletes it within its request's
 * timeout; one left there (the web process died first; a verification's holds an embedding) is deleted after this many
 * days, as the embeddings of abandoned enrollments are.
 */
export const API_RESULT_EXPIRY_DAYS = 1;
/**
 * An enrollment's embedding waits under EMBEDDING_KEY_PREFIX for the web role to take it into the gallery, which takes
 * seconds; one left there (the enrollment was abandoned) is deleted after this many days, S3's least: by a lifecycle
 * rule on AWS (infra/plan.ts), by the local bucket in the embedded mode (roles/cloud/local/file-bucket.ts).
 */
export const EMBEDDING_EXPIRY_DAYS = 1;
/**
 * Every upload's key begins with its request id (roles/web/upload.ts), a lowercase UUID (roles/web/request-id.ts), so
 * with one of these characters; the input bucket's private objects (`_secrets/`, `_bake/`) begin with "_". An S3
 * lifecycle filter cannot say "all but a prefix", so the retention of uploads is one rule per character.
 */
export const UPLOAD_KEY_PREFIXES: readonly string[] = [..."0123456789abcdef"];
/** An upload's name (file name without extension) is cut to this many UTF-8 bytes, so any script fits the job. */
export const MAX_NAME_BYTES = 200;

export const AnswerModeSchema = Type.Union([Type.Literal("closed"), Type.Literal("open")]);
export type AnswerMode = Static<typeof AnswerModeSchema>;
/**
 * On AWS the admin API's bearer token is a private object at this key of the input bucket: bootstrap writes it, only
 * the web role may read it (the app and builder roles are denied the prefix), and it is re-read, so rotating it
 * needs no new image.
 */
export const API_TOKEN_KEY = "_secrets/api-token";
/**
 * The recognition keys (roles/web/api-key-store.ts): one JSON document of their SHA-256 hashes beside the admin token,
 * in the input bucket's private prefix. The web role reads and rewrites it (never the token); the app role may not read it.
 */
export const API_KEYS_KEY = "_secrets/api-keys.json";
/**
 * Each app instance keeps a report of the jobs it holds at this prefix of the reports bucket (apart from the data
 * buckets, whose object counts stay those of the requests), one object per instance
 * that only that instance may write (on AWS the rest of the key is the instance's ARN, which IAM can name as
 * `${ec2:SourceInstanceARN}`). The controller scales in only when every report says none.
 */
export const JOB_REPORTS_PREFIX = "instance-reports/";
/** An app instance rewrites its report at least this often, unchanged or not. */
export const JOB_REPORT_INTERVAL_MS = 5_000;
/** A report older than this is from an instance that went silent (died): it no longer counts. */
export const JOB_REPORT_EXPIRY_MS = 3 * JOB_REPORT_INTERVAL_MS;
/**
 * Leases in the reports bucket, one per part a deployment plays once: the controller (two would both launch), and the
 * web role (the response queue's one consumer: a second would take and delete the first one's replies).
 */
export const LEASE_KEYS = { controller: "leases/controller", web: "leases/web" } as const;
export const LEASE_KEY_PREFIX = "leases/";
/** A lease unrenewed for this long is taken over: how long a crashed controller or web process goes unreplaced. */
export const LEASE_TERM_MS = 15_000;
