/**
 * A loopback pass-through in front of one of the region's endpoints that shows the test each request before
 * forwarding it: who sent it (the access key id of its SigV4 signature; give each instance its own key to tell
 * instances apart), the method and the path. The listener may act first, e.g. kill the sender mid-job, or answer in
 * the region's place (a Response), e.g. fail one instance's calls.
 */
export interface TappedRequest {
  accessKeyId: string | undefined;
  method: string;
  path: string;
}

export interface RequestTap {
  endpoint: string;
  stop(): Promise<void>;
}

/** The longest an SQS long poll waits (ReceiveMessage WaitTimeSeconds): the emulator's servers keep such a request open. */
export const SQS_MAX_WAIT_SECONDS = 20;

const CREDENTIAL = /Credential=([^/,\s]+)\//;

/**
 * Where the tap passes requests on: an endpoint's address, or, in the process that serves the endpoint, its handler.
 * Give the handler when there is one: Bun runs at most 256 fetches at once in a process and queues the rest, so a tap
 * that fetched from an emulator that itself fetches (the S3/SQS front from fauxqs) deadlocked once 256 requests held
 * by the tap waited on the emulator's queued fetches (a burst's uploads beside 15 app instances reading the gallery).
 */
export type TapUpstream = string | ((request: Request) => Promise<Response>);

export function startRequestTap(upstream: TapUpstream, listener: (request: TappedRequest) => void | Response | Promise<void | Response>): RequestTap {
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    // Long polls pass through here too (see fauxqs-front.ts).
    idleTimeout: SQS_MAX_WAIT_SECONDS + 10,
    async fetch(request) {
      const url = new URL(request.url);
      const path = decodeURIComponent(url.pathname);
      const instead = await listener({ accessKeyId: CREDENTIAL.exec(request.headers.get("authorization") ?? "")?.[1], method: request.method, path });
      if (instead) return instead;
      if (typeof upstream !== "string") return upstream(request);
      const body = request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer();
      const answer = await fetch(`${upstream}${url.pathname}${url.search}`, { method: request.method, headers: request.headers, body, redirect: "manual", decompress: false });
      return new Response(answer.body, { status: answer.status, headers: answer.headers });
    },
  });
  return { endpoint: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}
