/**
 * A loopback front for fauxqs that fills two gaps between it and AWS for the infra scripts, which run as separate
 * processes with nothing but AWS_ENDPOINT_URL pointing at this front:
 * - fauxqs accepts but does not keep a bucket's public access block, default encryption and tags (it answers
 *   `?publicAccessBlock` and friends as if they were CreateBucket/ListObjects): the front keeps those three bucket
 *   subresources itself, with S3's own error codes;
 * - fauxqs names queues `http://sqs.<region>.localhost:<port>/...`, a host that does not resolve here, and the SDK
 *   sends each queue call to its queue URL's host: the front rewrites queue URLs in answers to its own address.
 * It also plays what fauxqs leaves out:
 * - bucket names in `takenBuckets` belong to another AWS account, so every request to them answers 403 AccessDenied
 *   (HEAD with no body, as S3 does);
 * - SQS refuses a deleted queue's name for a while (60 s on AWS; `sqs.queueNameReuseDelayMs`, default 0), and
 *   ListQueues may still list a deleted queue for about as long (`sqs.deletedQueueListedMs`, default 0);
 * - with `access`, each instance's role (infra/sim/iam/access.ts): a call the role does not allow answers
 *   AccessDenied, and, as on S3, a GET or HEAD of a missing object answers 403 rather than 404 to a caller that may
 *   not list the bucket;
 * - SQS's `ApproximateNumberOf*` counts "may not achieve consistency until at least 1 minute after the producers stop
 *   sending": `sqs.approximateCounts` makes them lag (the counts as they were `lagMs` ago, 0 before that) and read
 *   low (0) for a `lowFraction` of the calls. Default: exact.
 * - S3's conditional writes (If-Match, If-None-Match on PutObject), which fauxqs ignores.
 * - AWS's propagation windows (infra/sim/propagation.ts), default off: a new queue unknown for a moment
 *   (`sqs.newQueueUnknownMs`; CreateQueue's reference: wait at least a second), SetQueueAttributes read back as it was
 *   (`sqs.attributeLagMs`; up to 60 s, MessageRetentionPeriod up to 15 minutes), a bucket's lifecycle configuration
 *   read back whole as it was before a PUT or DELETE of it that succeeded (`s3.lifecycleLagMs`; "a few minutes").
 * - The integrity header (Content-MD5 or x-amz-checksum-*) S3 requires on PutBucketTagging, PutPublicAccessBlock,
 *   PutBucketEncryption, PutBucketLifecycleConfiguration and DeleteObjects (infra/sim/s3-integrity.ts), and
 *   PutBucketLifecycleConfiguration's checks of its body (infra/sim/s3-lifecycle.ts): a refused call answers 400 and
 *   changes nothing.
 * - ListMultipartUploads, which fauxqs lacks: the front keeps the open uploads it saw created.
 * - Bucket owners: every bucket is the region's account's (ACCOUNT_ID) unless `bucketOwners` names another account,
 *   whose bucket lets anyone in (the worst case of a name claimed after a teardown); a request whose
 *   `x-amz-expected-bucket-owner` names another owner than the bucket's answers 403 AccessDenied, as on S3. STS
 *   GetCallerIdentity answers the region's account (fauxqs's own STS answers another).
 * Everything else goes to fauxqs unchanged.
 */
import { SQS_MAX_WAIT_SECONDS } from "./request-tap.ts";
import { accessKeyOf, s3Access, sqsAccess, type AccessControl } from "./iam/access.ts";
import type { AccessRequest } from "./iam/evaluate.ts";
import { ACCOUNT_ID } from "./ec2/model.ts";
import { OpenUploads } from "./multipart-uploads.ts";
import { LaggingReads } from "./propagation.ts";
import { requestIntegrityRefusal } from "./s3-integrity.ts";
import { lifecycleBodyRefusal } from "./s3-lifecycle.ts";
import { escapeXml } from "./xml-tree.ts";
const SUBRESOURCES: Record<string, { missingCode: string }> = {
  publicAccessBlock: { missingCode: "NoSuchPublicAccessBlockConfiguration" },
  encryption: { missingCode: "ServerSideEncryptionConfigurationNotFoundError" },
  tagging: { missingCode: "NoSuchTagSet" },
};

const xml = (body: string, status = 200) => new Response(body, { status, headers: { "content-type": "application/xml" } });
const s3Error = (code: string, status: number, message = code) =>
  xml(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>`, status);

/** SQS's JSON protocol error, with the query-compatible header the SDK reads the code from. */
const queueDeletedRecently = () =>
  new Response(JSON.stringify({ __type: "com.amazonaws.sqs#QueueDeletedRecently", message: "You must wait 60 seconds after deleting a queue before you can create another queue with the same name." }), {
    status: 400,
    headers: { "content-type": "application/x-amz-json-1.0", "x-amzn-query-error": "AWS.SimpleQueueService.QueueDeletedRecently;Sender" },
  });

const nonExistentQueue = () =>
  new Response(JSON.stringify({ __type: "com.amazonaws.sqs#QueueDoesNotExist", message: "The specified queue does not exist." }), {
    status: 400,
    headers: { "content-type": "application/x-amz-json-1.0", "x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender" },
  });

const callerIdentity = () =>
  new Response(
    `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::${ACCOUNT_ID}:user/operator</Arn><UserId>AIDAEMULATEDOPERATOR</UserId><Account>${ACCOUNT_ID}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>${crypto.randomUUID()}</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
    { headers: { "content-type": "text/xml" } },
  );

const sqsAccessDenied = (denied: AccessRequest) =>
  new Response(JSON.stringify({ __type: "com.amazonaws.sqs#AccessDenied", message: `not authorized to perform ${denied.action} on ${denied.resource}` }), {
    status: 403,
    headers: { "content-type": "application/x-amz-json-1.0", "x-amzn-query-error": "AccessDenied;Sender" },
  });

const s3AccessDenied = (method: string) => (method === "HEAD" ? new Response(null, { status: 403 }) : s3Error("AccessDenied", 403));

export interface FrontAccess {
  control: AccessControl;
  /** For queue ARNs. */
  region: string;
}

const FAUXQS_QUEUE_ORIGIN = /http:\/\/sqs\.[a-z0-9-]+\.localhost:\d+/g;

const APPROXIMATE_COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"];

export interface ApproximateCounts {
  /** Answer the counts as they were this long ago (0 for a queue first read less than this ago). */
  lagMs: number;
  /** The fraction of calls whose counts read 0. */
  lowFraction: number;
}

/** What GetQueueAttributes answers under `settings`, from the exact counts it read now and before. */
function approximate(settings: ApproximateCounts, history: { at: number; counts: Record<string, string> }[], now: number): Record<string, string> {
  const zeros = Object.fromEntries(APPROXIMATE_COUNTS.map((name) => [name, "0"]));
  if (Math.random() < settings.lowFraction) return zeros;
  const shown = history.findLast((reading) => reading.at <= now - settings.lagMs);
  return shown?.counts ?? zeros;
}

/** Runs tasks of one key in order, tasks of different keys at once. */
class KeyedTurns {
  private readonly tails = new Map<string, Promise<unknown>>();

  async inTurn<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task);
    const tail = result.catch(() => {});
    this.tails.set(key, tail);
    try {
      return await result;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

export interface FauxqsFront {
  address: string;
  /** Every request, in order, as `SQS <operation>` or `S3 <method> <path and query>`, so a test can tell which calls a client made. */
  requests: string[];
  /** The requests not answered yet, oldest first, and for how long: what a stalled caller waits for. */
  unanswered(): { request: string; forMs: number }[];
  /** Answers a request as the front's server does, without a connection: for a pass-through in this process. */
  handle(request: Request): Promise<Response>;
  /** Bucket names another AWS account owns. */
  takenBuckets: Set<string>;
  /** Bucket name -> the account that owns it, when not the region's: such a bucket lets everyone in. */
  bucketOwners: Map<string, string>;
  sqs: { queueNameReuseDelayMs: number; deletedQueueListedMs: number; approximateCounts: ApproximateCounts; newQueueUnknownMs: number; attributeLagMs: number };
  s3: { lifecycleLagMs: number };
  stop(): Promise<void>;
}

export function startFauxqsFront(upstream: string, access?: FrontAccess): FauxqsFront {
  const settings = new Map<string, string>();
  const requests: string[] = [];
  const takenBuckets = new Set<string>();
  const bucketOwners = new Map<string, string>();
  const sqs = { queueNameReuseDelayMs: 0, deletedQueueListedMs: 0, approximateCounts: { lagMs: 0, lowFraction: 0 }, newQueueUnknownMs: 0, attributeLagMs: 0 };
  const s3 = { lifecycleLagMs: 0 };
  /** Queue name -> when a queue created just now becomes usable. */
  const newQueues = new Map<string, number>();
  /** `<queue name>\n<attribute>` and bucket names -> what reads back while a change propagates. */
  const laggingAttributes = new LaggingReads<string>();
  const laggingLifecycles = new LaggingReads<string>();
  const uploads = new OpenUploads();
  /** Deleted queues' URLs -> until when ListQueues still lists them. */
  const stillListed = new Map<string, number>();
  /** Exact counts read so far, by queue URL, for lagging answers. */
  const countHistory = new Map<string, { at: number; counts: Record<string, string> }[]>();
  /** Queue name -> when SQS takes it again. */
  const deletedQueues = new Map<string, number>();
  /** Writes of one object, one at a time: a conditional put's check and its write are then atomic, as on S3. */
  const objectWrites = new KeyedTurns();
  let origin = "";
  const waiting = new Map<number, { request: string; since: number }>();
  let received = 0;
  async function handle(request: Request): Promise<Response> {
    const id = ++received;
    const url = new URL(request.url);
    waiting.set(id, { request: `${request.headers.get("x-amz-target") ?? request.method} ${url.pathname}`, since: Date.now() });
    try {
      return await answer(request, url);
    } finally {
      waiting.delete(id);
    }
  }
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    // SQS holds a long poll open up to 20 s (WaitTimeSeconds), past Bun's default idle timeout of 10 s.
    idleTimeout: SQS_MAX_WAIT_SECONDS + 10,
    fetch: handle,
  });

  async function answer(request: Request, url: URL): Promise<Response> {
    const sqsOperation = request.headers.get("x-amz-target")?.match(/^AmazonSQS\.(\w+)$/)?.[1];
    const bucket = url.pathname.split("/").filter(Boolean);
    if (!sqsOperation && bucket.length === 0 && request.method === "POST" && /(^|&)Action=GetCallerIdentity(&|$)/.test(await request.clone().text())) {
      requests.push("STS GetCallerIdentity");
      return callerIdentity();
    }
    requests.push(sqsOperation ? `SQS ${sqsOperation}` : `S3 ${request.method} ${url.pathname}${url.search}`);
    if (!sqsOperation && takenBuckets.has(bucket[0] ?? "")) return s3AccessDenied(request.method);
    const expectedOwner = request.headers.get("x-amz-expected-bucket-owner");
    if (!sqsOperation && bucket[0] && expectedOwner !== null && expectedOwner !== (bucketOwners.get(bucket[0]) ?? ACCOUNT_ID)) return s3AccessDenied(request.method);
    const accessKeyId = accessKeyOf(request);
    if (access) {
      const body = sqsOperation ? ((await request.clone().json().catch(() => ({}))) as { QueueUrl?: string; QueueName?: string }) : {};
      const denied = access.control.denied(accessKeyId, [sqsOperation ? sqsAccess(sqsOperation, body, access.region) : s3Access(request.method, url)]);
      if (denied) return sqsOperation ? sqsAccessDenied(denied) : s3AccessDenied(request.method);
    }
    const queue = sqsOperation ? ((await request.clone().json().catch(() => ({}))) as { QueueName?: string; QueueUrl?: string; Attributes?: Record<string, string> }) : {};
    const queueName = queue.QueueName ?? queue.QueueUrl?.split("/").pop() ?? "";
    if (sqsOperation && sqsOperation !== "CreateQueue" && (newQueues.get(queueName) ?? 0) > Date.now()) return nonExistentQueue();
    if (sqsOperation === "DeleteQueue") {
      deletedQueues.set(queueName, Date.now() + sqs.queueNameReuseDelayMs);
      newQueues.delete(queueName);
      laggingAttributes.forget(`${queueName}\n`);
      if (queue.QueueUrl) stillListed.set(queue.QueueUrl, Date.now() + sqs.deletedQueueListedMs);
    }
    if (sqsOperation === "CreateQueue" && (deletedQueues.get(queueName) ?? 0) > Date.now()) return queueDeletedRecently();
    if (sqsOperation === "SetQueueAttributes" && sqs.attributeLagMs > 0 && queue.QueueUrl) {
      const before = await upstreamQueueAttributes(queue.QueueUrl);
      for (const name of Object.keys(queue.Attributes ?? {})) laggingAttributes.changed(`${queueName}\n${name}`, before[name], sqs.attributeLagMs, Date.now());
    }
    const listPrefix = sqsOperation === "ListQueues" ? (((await request.clone().json()) as { QueueNamePrefix?: string }).QueueNamePrefix ?? "") : undefined;
    const countsOf = sqsOperation === "GetQueueAttributes" ? ((await request.clone().json()) as { QueueUrl?: string }).QueueUrl ?? "" : undefined;
    const integrity = sqsOperation ? undefined : await requestIntegrityRefusal(request);
    if (integrity) return s3Error(integrity.code, 400, integrity.message);
    /** The bucket's lifecycle configuration before this PUT or DELETE of it, read back until the change propagates. */
    let lifecycleBefore: { value: string | undefined } | undefined;
    if (!sqsOperation && bucket.length === 1 && url.searchParams.has("lifecycle")) {
      const lagging = request.method === "GET" ? laggingLifecycles.shown(bucket[0]!, Date.now()) : undefined;
      if (lagging) return lagging.value === undefined ? s3Error("NoSuchLifecycleConfiguration", 404) : xml(lagging.value);
      const refusal = request.method === "PUT" ? lifecycleBodyRefusal(new Uint8Array(await request.clone().arrayBuffer())) : undefined;
      if (refusal) return s3Error(refusal.code, 400, refusal.message);
      if ((request.method === "PUT" || request.method === "DELETE") && s3.lifecycleLagMs > 0) {
        const before = await fetch(new URL(url.pathname + url.search, upstream));
        lifecycleBefore = { value: before.ok ? await before.text() : undefined };
      }
    }
    if (!sqsOperation && bucket.length === 1 && request.method === "GET" && url.searchParams.has("uploads")) {
      return xml(uploads.listXml(bucket[0]!, url.searchParams.get("prefix") ?? ""));
    }
    const subresource = Object.keys(SUBRESOURCES).find((name) => url.searchParams.has(name));
    if (bucket.length === 1 && subresource) {
      const key = `${bucket[0]}?${subresource}`;
      if (request.method === "PUT") {
        settings.set(key, await request.text());
        return new Response(null, { status: subresource === "tagging" ? 204 : 200 });
      }
      if (request.method === "DELETE") {
        settings.delete(key);
        return new Response(null, { status: 204 });
      }
      const stored = settings.get(key);
      return stored === undefined ? s3Error(SUBRESOURCES[subresource]!.missingCode, 404) : xml(stored);
    }
    const forward = async () =>
      fetch(new URL(url.pathname + url.search, upstream), {
        method: request.method,
        headers: request.headers,
        body: request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer(),
        redirect: "manual",
      });
    const writesObject = !sqsOperation && bucket.length > 1 && (request.method === "PUT" || request.method === "DELETE");
    const forwarded = writesObject ? await objectWrites.inTurn(url.pathname, () => conditionally(request, url.pathname, forward)) : await forward();
    if (sqsOperation) {
      const headers = new Headers(forwarded.headers);
      headers.delete("content-length");
      let body = (await forwarded.text()).replace(FAUXQS_QUEUE_ORIGIN, origin);
      if (countsOf !== undefined && forwarded.ok) body = laggingAnswer(queueName, approximateAnswer(countsOf, body));
      if (sqsOperation === "CreateQueue" && forwarded.ok && !newQueues.has(queueName)) newQueues.set(queueName, Date.now() + sqs.newQueueUnknownMs);
      if (listPrefix !== undefined && forwarded.ok) body = withRecentlyDeleted(listPrefix, body);
      return new Response(body, { status: forwarded.status, headers });
    }
    const readsObject = (request.method === "GET" || request.method === "HEAD") && bucket.length > 1;
    if (access && readsObject && forwarded.status === 404 && access.control.denied(accessKeyId, [{ action: "s3:ListBucket", resource: `arn:aws:s3:::${bucket[0]}` }])) {
      return s3AccessDenied(request.method);
    }
    if (request.method === "DELETE" && bucket.length === 1 && forwarded.ok) {
      for (const name of Object.keys(SUBRESOURCES)) settings.delete(`${bucket[0]}?${name}`);
      laggingLifecycles.forget(bucket[0]!);
      uploads.forgetBucket(bucket[0]!);
    }
    if (lifecycleBefore && forwarded.ok) laggingLifecycles.changed(bucket[0]!, lifecycleBefore.value, s3.lifecycleLagMs, Date.now());
    if (bucket.length > 1 && forwarded.ok) return uploads.track(request.method, url, forwarded);
    return forwarded;
  }
  /**
   * fauxqs ignores If-Match and If-None-Match on PutObject (S3 has honoured both since 2024): the front checks them
   * against the object's ETag and answers as S3 does, 412 PreconditionFailed, or 404 NoSuchKey for If-Match on a
   * missing object.
   */
  async function conditionally(request: Request, path: string, forward: () => Promise<Response>): Promise<Response> {
    const ifMatch = request.headers.get("if-match");
    const ifNoneMatch = request.headers.get("if-none-match");
    if (request.method !== "PUT" || (ifMatch === null && ifNoneMatch === null)) return forward();
    const head = await fetch(new URL(path, upstream), { method: "HEAD" });
    // A fault injected into the check is the request's: answered as S3 would, so the caller retries the whole put.
    if (!head.ok && head.status !== 404) return s3Error(head.status === 503 ? "SlowDown" : "InternalError", head.status);
    const etag = head.ok ? head.headers.get("etag") : null;
    const unquoted = (tag: string) => tag.trim().replace(/^"|"$/g, "");
    if (ifMatch !== null && etag === null) return s3Error("NoSuchKey", 404);
    if (ifMatch !== null && unquoted(ifMatch) !== unquoted(etag!)) return s3Error("PreconditionFailed", 412);
    if (ifNoneMatch === "*" && etag !== null) return s3Error("PreconditionFailed", 412);
    return forward();
  }

  /** The queue's attributes as fauxqs holds them now (the front's own read: no fault, no lag). */
  async function upstreamQueueAttributes(queueUrl: string): Promise<Record<string, string>> {
    const answer = await fetch(upstream, {
      method: "POST",
      headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.GetQueueAttributes" },
      body: JSON.stringify({ QueueUrl: queueUrl, AttributeNames: ["All"] }),
    });
    return answer.ok ? (((await answer.json()) as { Attributes?: Record<string, string> }).Attributes ?? {}) : {};
  }

  /** GetQueueAttributes while a SetQueueAttributes propagates: the changed attributes as they were. */
  function laggingAnswer(queueName: string, body: string): string {
    const answer = JSON.parse(body) as { Attributes?: Record<string, string> };
    const attributes = { ...answer.Attributes };
    let lagging = false;
    for (const name of Object.keys(attributes)) {
      const shown = laggingAttributes.shown(`${queueName}\n${name}`, Date.now());
      if (!shown) continue;
      lagging = true;
      if (shown.value === undefined) delete attributes[name];
      else attributes[name] = shown.value;
    }
    return lagging ? JSON.stringify({ ...answer, Attributes: attributes }) : body;
  }

  function withRecentlyDeleted(prefix: string, body: string): string {
    const answer = JSON.parse(body) as { QueueUrls?: string[] };
    const urls = new Set(answer.QueueUrls ?? []);
    for (const [url, until] of stillListed) {
      if (until <= Date.now()) stillListed.delete(url);
      else if ((url.split("/").pop() ?? "").startsWith(prefix)) urls.add(url);
    }
    return JSON.stringify({ ...answer, QueueUrls: [...urls] });
  }

  function approximateAnswer(queueUrl: string, body: string): string {
    const answer = JSON.parse(body) as { Attributes?: Record<string, string> };
    const attributes = answer.Attributes ?? {};
    const counts = Object.fromEntries(APPROXIMATE_COUNTS.flatMap((name) => (attributes[name] === undefined ? [] : [[name, attributes[name]]])));
    if (Object.keys(counts).length === 0) return body;
    const now = Date.now();
    const history = countHistory.get(queueUrl) ?? [];
    history.push({ at: now, counts });
    // Keep the newest reading at least lagMs old and everything after it.
    const settings = sqs.approximateCounts;
    const oldest = history.findLastIndex((reading) => reading.at <= now - settings.lagMs);
    if (oldest > 0) history.splice(0, oldest);
    countHistory.set(queueUrl, history);
    const shown = approximate(settings, history, now);
    for (const name of Object.keys(counts)) attributes[name] = shown[name] ?? "0";
    return JSON.stringify({ ...answer, Attributes: attributes });
  }

  origin = `http://127.0.0.1:${server.port}`;
  const unanswered = () => [...waiting.values()].map(({ request, since }) => ({ request, forMs: Date.now() - since }));
  return { address: origin, requests, unanswered, handle, takenBuckets, bucketOwners, sqs, s3, stop: () => server.stop(true) };
}
