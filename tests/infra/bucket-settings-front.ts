/**
 * fauxqs accepts but does not keep a bucket's public access block, default encryption and tags (it answers
 * `?publicAccessBlock` and friends as if they were CreateBucket/ListObjects). This loopback front keeps those three
 * bucket subresources itself, with S3's own error codes, and forwards every other request to fauxqs unchanged.
 * It belongs with the emulated region in tests/support/ once that exists.
 */
const SUBRESOURCES: Record<string, { missingCode: string }> = {
  publicAccessBlock: { missingCode: "NoSuchPublicAccessBlockConfiguration" },
  encryption: { missingCode: "ServerSideEncryptionConfigurationNotFoundError" },
  tagging: { missingCode: "NoSuchTagSet" },
};

const xml = (body: string, status = 200) => new Response(body, { status, headers: { "content-type": "application/xml" } });
const s3Error = (code: string, status: number) => xml(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`, status);

export interface BucketSettingsFront {
  address: string;
  stop(): Promise<void>;
}

export function startBucketSettingsFront(upstream: string): BucketSettingsFront {
  const settings = new Map<string, string>();
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const bucket = url.pathname.split("/").filter(Boolean);
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
      const forwarded = await fetch(new URL(url.pathname + url.search, upstream), {
        method: request.method,
        headers: request.headers,
        body: request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer(),
        redirect: "manual",
      });
      if (request.method === "DELETE" && bucket.length === 1 && forwarded.ok) {
        for (const name of Object.keys(SUBRESOURCES)) settings.delete(`${bucket[0]}?${name}`);
      }
      return forwarded;
    },
  });
  return { address: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}
