/**
 * One instance's metadata service (IMDSv2), reached through `AWS_EC2_METADATA_SERVICE_ENDPOINT`: a session token from
 * `PUT /latest/api/token`, then GETs with `X-aws-ec2-metadata-token`. It reads the instance live, so tags and state
 * changes show at once, as on EC2.
 */
import { ACCOUNT_ID, type Instance } from "../ec2/model.ts";

export interface ImdsSource {
  instance: Instance;
  region: string;
  tags(): Record<string, string>;
  /** The role inside an instance profile (by profile name), for `iam/security-credentials/`. */
  roleOf(profileName: string): string | undefined;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

export interface ImdsServer {
  endpoint: string;
  stop(): Promise<void>;
}

const MAX_TOKEN_TTL_SECONDS = 21_600;

const plain = (body: string, status = 200) => new Response(body, { status, headers: { "content-type": "text/plain" } });
const notFound = () => plain("Not Found", 404);

/** The metadata tree, path (without `/latest/`) -> value; directories list their children. */
function metadata(source: ImdsSource): Record<string, string | undefined> {
  const { instance, region } = source;
  const profile = instance.iamInstanceProfile?.name;
  const role = profile === undefined ? undefined : source.roleOf(profile);
  const now = new Date();
  const tagsEnabled = instance.metadataOptions.instanceMetadataTags === "enabled";
  const tags = tagsEnabled ? source.tags() : {};
  const entries: Record<string, string | undefined> = {
    "meta-data/ami-id": instance.imageId,
    "meta-data/instance-id": instance.id,
    "meta-data/instance-type": instance.instanceType,
    "meta-data/local-ipv4": instance.privateIp,
    "meta-data/local-hostname": `ip-${instance.privateIp.replace(/\./g, "-")}.${region}.compute.internal`,
    "meta-data/placement/region": region,
    "meta-data/placement/availability-zone": `${region}a`,
    "dynamic/instance-identity/document": JSON.stringify(
      {
        accountId: ACCOUNT_ID,
        architecture: "x86_64",
        availabilityZone: `${region}a`,
        imageId: instance.imageId,
        instanceId: instance.id,
        instanceType: instance.instanceType,
        pendingTime: instance.launchTime.toISOString(),
        privateIp: instance.privateIp,
        region,
        version: "2017-09-30",
      },
      null,
      2,
    ),
    "user-data": instance.userData === undefined ? undefined : Buffer.from(instance.userData, "base64").toString(),
  };
  if (role !== undefined) {
    entries[`meta-data/iam/security-credentials/${role}`] = JSON.stringify({
      Code: "Success",
      LastUpdated: now.toISOString(),
      Type: "AWS-HMAC",
      AccessKeyId: source.credentials.accessKeyId,
      SecretAccessKey: source.credentials.secretAccessKey,
      Token: `emulated-session-for-${role}`,
      Expiration: new Date(now.getTime() + 6 * 3600_000).toISOString(),
    });
  }
  if (tagsEnabled) {
    entries["meta-data/tags/instance/"] = Object.keys(tags).join("\n");
    for (const [key, value] of Object.entries(tags)) entries[`meta-data/tags/instance/${key}`] = value;
  }
  return entries;
}

/** A directory's listing: its direct children, sub-directories with a trailing slash. */
function listing(entries: Record<string, string | undefined>, directory: string): string | undefined {
  const children = new Set<string>();
  for (const [path, value] of Object.entries(entries)) {
    if (value === undefined || !path.startsWith(directory) || path === directory) continue;
    const rest = path.slice(directory.length);
    children.add(rest.includes("/") ? `${rest.split("/")[0]}/` : rest);
  }
  return children.size ? [...children].join("\n") : undefined;
}

export function startImds(source: ImdsSource): ImdsServer {
  const tokens = new Map<string, number>();
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      // The SDK's metadata client joins the endpoint's "/" and the path into "//latest/...".
      const path = new URL(request.url).pathname.replace(/\/{2,}/g, "/");
      if (path === "/latest/api/token") {
        if (request.method !== "PUT") return plain("Method Not Allowed", 405);
        const ttl = Number(request.headers.get("x-aws-ec2-metadata-token-ttl-seconds"));
        if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL_SECONDS) return plain("Bad Request", 400);
        const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
        tokens.set(token, Date.now() + ttl * 1000);
        return new Response(token, { headers: { "content-type": "text/plain", "x-aws-ec2-metadata-token-ttl-seconds": String(ttl) } });
      }
      if (request.method !== "GET" && request.method !== "HEAD") return plain("Method Not Allowed", 405);
      const token = request.headers.get("x-aws-ec2-metadata-token");
      const expiry = token === null ? undefined : tokens.get(token);
      if (token !== null && (expiry === undefined || expiry < Date.now())) return plain("Unauthorized", 401);
      if (token === null && source.instance.metadataOptions.httpTokens === "required") return plain("Unauthorized", 401);
      if (!path.startsWith("/latest/")) return notFound();
      const entries = metadata(source);
      const key = path.slice("/latest/".length);
      const directory = key.endsWith("/") ? key : `${key}/`;
      const value = entries[key] ?? entries[directory] ?? listing(entries, directory);
      return value === undefined ? notFound() : plain(value);
    },
  });
  return { endpoint: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}
