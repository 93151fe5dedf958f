/** The IAM Query API emulator: `startIamEmulator()` serves `iamActions` on a loopback port. */
import { FaultSwitch } from "../faults.ts";
import { QueryError, toXml, type Params } from "../query-protocol.ts";
import { serveQuery } from "../query-server.ts";
import { iamActions } from "./actions.ts";
import { IamStore } from "./model.ts";

const NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/";

export interface IamEmulator {
  endpoint: string;
  store: IamStore;
  faults: FaultSwitch;
  /** Every Action requested, in order. */
  actions: string[];
  /** The role in the named instance profile, as an instance's metadata service reports it. */
  roleOf(instanceProfileName: string): string | undefined;
  stop(): Promise<void>;
}

export interface IamEmulatorOptions {
  /** Refuses a call its caller may not make (see infra/sim/iam/access.ts). */
  authorize?(action: string, params: Params, request: Request): void;
}

export function startIamEmulator(options: IamEmulatorOptions = {}): IamEmulator {
  const store = new IamStore();
  const faults = new FaultSwitch();
  const server = serveQuery({
    name: "IAM",
    // A policy put some time ago takes effect before any call reads or checks it.
    handlers: Object.fromEntries(Object.entries(iamActions).map(([action, handle]) => [action, (params: Params, context: IamStore) => (context.settle(), handle(params, context))])),
    context: store,
    faults,
    faultErrors: {
      throttle: new QueryError("Throttling", "Rate exceeded", 400),
      "server-error": new QueryError("ServiceFailure", "The request processing has failed because of an unknown error.", 500),
    },
    authorize: options.authorize,
    success: (action, result, requestId) =>
      `<${action}Response xmlns="${NAMESPACE}"><${action}Result>${toXml(result, "member")}</${action}Result><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`,
    error: (error, requestId) =>
      `<ErrorResponse xmlns="${NAMESPACE}"><Error><Type>${error.status >= 500 ? "Receiver" : "Sender"}</Type><Code>${error.code}</Code><Message>${toXml(error.message, "member")}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
  });
  return {
    endpoint: server.endpoint,
    store,
    faults,
    actions: server.actions,
    roleOf: (name) => store.instanceProfiles.get(name)?.roleNames[0],
    stop: server.stop,
  };
}
