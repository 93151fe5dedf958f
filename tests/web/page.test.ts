// The operator's page as served: rendered with the live figures, a CSP of 'self', every file it references local,
// and the classic contract still on POST /.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { multipart, request, startWebHarness, testImages, type WebHarness } from "./support.ts";

let harness: WebHarness;
beforeAll(async () => {
  harness = await startWebHarness();
});
afterAll(() => harness.stop());

describe("operator's page", () => {
  test("GET / is HTML rendered with the figures of the moment, under a CSP that allows only the service", async () => {
    await harness.gallery.enrollFromKey("Paul", await embeddingKey());
    const response = await harness.app.handle(request("/"));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("content-security-policy")).toStartWith("default-src 'self';");
    const html = await response.text();
    expect(html).toContain(`<span class="value" id="gallery-size">1 / 1</span>`);
    expect(html).toContain(`<span class="value" id="queue-depth">–</span>`); // no controller in this process
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script>|\son[a-z]+=|style="/); // nothing inline the CSP would block
  });

  test("every file the page references is served by the service, with its type", async () => {
    const html = await (await harness.app.handle(request("/"))).text();
    const references = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!).filter((url) => url.startsWith("/page/"));
    expect(references.sort()).toEqual(["/page/favicon.svg", "/page/operator.css", "/page/operator.js", "/page/uPlot.iife.min.js", "/page/uPlot.min.css"]);
    for (const url of references) {
      const asset = await harness.app.handle(request(url));
      expect(asset.status, url).toBe(200);
      expect(asset.headers.get("content-type"), url).toMatch(/^(text\/javascript|text\/css|image\/svg\+xml)/);
    }
    expect((await harness.app.handle(request("/page/../roles/web/page.ts"))).status).toBe(404);
  });

  test("POST / is still the classic contract", async () => {
    const response = await harness.app.handle(request("/", { method: "POST", body: multipart("inputFile", (await testImages()).jpeg, "test_00.jpg") }));
    expect(response.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await response.text()).toBe("test_00:Paul");
  });
});

async function embeddingKey(): Promise<string> {
  const key = "embeddings/page-test.f32";
  await harness.galleryBucket.put(key, new Uint8Array(new Float32Array([1, 0, 0, 0]).buffer));
  return key;
}
