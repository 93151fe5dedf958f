/**
 * Who a request comes from, for the per-client upload cap and rate limit: the peer's address (Bun's `requestIP`), or,
 * only when the operator says a proxy is in front (FACEFLEET_TRUST_PROXY), the address that proxy appended last to
 * `X-Forwarded-For` (anything before it is the client's to write). An IPv6 client counts as its /64: one host is
 * usually given a whole /64, and could otherwise be a new client at every request.
 */
import { Elysia } from "elysia";

const clients = new WeakMap<Request, string>();
/** A request the plugin never saw (a test handling a route alone): one shared client. */
const UNSEEN = "unknown";

export function clientOf(request: Request): string {
  return clients.get(request) ?? UNSEEN;
}

/** The key a client's address is counted under: an IPv4 address, or the /64 prefix of an IPv6 one. */
export function clientKey(address: string): string {
  const ip = address.trim().toLowerCase().replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(":")) return ip.slice(0, 64);
  const [head = "", tail] = ip.split("::", 2);
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill("0"), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((group) => (group.replace(/^0+/, "") || "0").slice(0, 4))
    .join(":")}::/64`;
}

export function clientAddress(trustProxy: boolean) {
  return new Elysia({ name: "client-address", seed: trustProxy }).onRequest(({ request, server }) => {
    const forwarded = trustProxy ? request.headers.get("x-forwarded-for")?.split(",").pop()?.trim() : undefined;
    const address = forwarded || server?.requestIP(request)?.address;
    if (address) clients.set(request, clientKey(address));
  });
}
