/** A loopback HTTP server for a Query-protocol service: fault switch, form parsing, dispatch by Action, error XML. */
import type { FaultKind, FaultSwitch } from "./faults.ts";
import { parseQuery, QueryError, type Params, type XmlValue } from "./query-protocol.ts";

export interface QueryService<Context> {
  name: string;
  /** `request`: the signed request, for what depends on who calls. */
  handlers: Record<string, (params: Params, context: Context, request: Request) => XmlValue | Promise<XmlValue>>;
  context: Context;
  faults: FaultSwitch;
  /** The error each fault kind answers, as the service names it. */
  faultErrors: Record<FaultKind, QueryError>;
  /** Throws the service's QueryError when the caller (the signed request) may not make this call. */
  authorize?(action: string, params: Params, request: Request): void;
  success(action: string, result: XmlValue, requestId: string): string;
  error(error: QueryError, requestId: string): string;
}

export interface QueryServer {
  endpoint: string;
  /** Every Action requested, in order (faulted ones too), so a test can tell which calls a client made. */
  actions: string[];
  stop(): Promise<void>;
}

export function serveQuery<Context>(service: QueryService<Context>): QueryServer {
  const actions: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const requestId = crypto.randomUUID();
      const params = parseQuery(request.method === "POST" ? await request.text() : new URL(request.url).search.slice(1));
      const action = typeof params.Action === "string" ? params.Action : "";
      actions.push(action);
      const reply = (body: string, status = 200) =>
        new Response(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`, { status, headers: { "content-type": "text/xml;charset=UTF-8", "x-amzn-requestid": requestId } });
      try {
        const fault = service.faults.take(action);
        if (fault) throw service.faultErrors[fault];
        const handler = service.handlers[action];
        if (!handler) throw new QueryError("InvalidAction", `The action ${action} is not valid for this web service (${service.name} emulator).`);
        service.authorize?.(action, params, request);
        return reply(service.success(action, await handler(params, service.context, request), requestId));
      } catch (error) {
        if (!(error instanceof QueryError)) throw error;
        return reply(service.error(error, requestId), error.status);
      }
    },
    error(error) {
      return new Response(`${service.name} emulator failure: ${error.message}`, { status: 500 });
    },
  });
  return { endpoint: `http://127.0.0.1:${server.port}`, actions, stop: () => server.stop(true) };
}
