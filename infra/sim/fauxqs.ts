/**
 * S3 and SQS of the emulated region: fauxqs in this process, bound to 127.0.0.1 (its `startFauxqs` listens on every
 * interface, so the app is built and started here), with a fault switch per service in a request hook, behind the
 * loopback front that keeps bucket settings and rewrites queue URLs. Clients use the front's address, path-style S3
 * (the SDK picks path style by itself for an IP-address endpoint).
 */
import { buildApp } from "fauxqs";
import { startFauxqsFront, type FauxqsFront, type FrontAccess } from "./fauxqs-front.ts";
import { FaultSwitch, type FaultKind } from "./faults.ts";

export interface S3SqsEmulator {
  endpoint: string;
  faults: { s3: FaultSwitch; sqs: FaultSwitch };
  /** Every request, in order: see `FauxqsFront.requests`. */
  requests: string[];
  /** See `FauxqsFront.unanswered` and `FauxqsFront.handle`. */
  unanswered: FauxqsFront["unanswered"];
  handle: FauxqsFront["handle"];
  /** See `FauxqsFront.takenBuckets` and `FauxqsFront.sqs`. */
  takenBuckets: Set<string>;
  bucketOwners: Map<string, string>;
  sqs: FauxqsFront["sqs"];
  s3: FauxqsFront["s3"];
  stop(): Promise<void>;
}

interface FaultAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const SQS_TARGET = "AmazonSQS.";

/** The parts of fauxqs's (Fastify's) request and reply the fault hook uses. */
interface HookRequest {
  method: string;
  headers: Record<string, string | string[] | undefined>;
}
interface HookReply {
  code(status: number): HookReply;
  headers(values: Record<string, string>): HookReply;
  send(body: string): HookReply;
}

const s3Fault = (kind: FaultKind): FaultAnswer => {
  const [status, code, message] = kind === "throttle" ? [503, "SlowDown", "Please reduce your request rate."] : [500, "InternalError", "We encountered an internal error. Please try again."];
  return {
    status,
    headers: { "content-type": "application/xml" },
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>${crypto.randomUUID()}</RequestId></Error>`,
  };
};

/** SQS's JSON protocol, with the query-compatible error header the SDK reads the code from. */
const sqsFault = (kind: FaultKind): FaultAnswer => {
  const [status, code, fault, message] = kind === "throttle" ? [400, "RequestThrottled", "Sender", "Request is throttled."] : [500, "InternalError", "Receiver", "Internal error."];
  return {
    status,
    headers: { "content-type": "application/x-amz-json-1.0", "x-amzn-query-error": `${code};${fault}` },
    body: JSON.stringify({ __type: `com.amazonaws.sqs#${code}`, message }),
  };
};

export async function startS3AndSqs(access?: FrontAccess): Promise<S3SqsEmulator> {
  const faults = { s3: new FaultSwitch(), sqs: new FaultSwitch() };
  const app = buildApp({ logger: false });
  app.addHook("onRequest", async (request: HookRequest, reply: HookReply) => {
    const target = request.headers["x-amz-target"];
    const sqsOperation = typeof target === "string" && target.startsWith(SQS_TARGET) ? target.slice(SQS_TARGET.length) : undefined;
    const fault = sqsOperation !== undefined ? faults.sqs.take(sqsOperation) : faults.s3.take(request.method);
    if (!fault) return;
    const answer = sqsOperation !== undefined ? sqsFault(fault) : s3Fault(fault);
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  });
  const address = await app.listen({ port: 0, host: "127.0.0.1" });
  const front = startFauxqsFront(address, access);
  return {
    endpoint: front.address,
    faults,
    requests: front.requests,
    unanswered: front.unanswered,
    handle: front.handle,
    takenBuckets: front.takenBuckets,
    bucketOwners: front.bucketOwners,
    sqs: front.sqs,
    s3: front.s3,
    async stop() {
      await front.stop();
      await app.close();
    },
  };
}
