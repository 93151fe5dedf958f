// Embedded, the app instances the controller starts after a scale-in read the gallery the instances before them read:
// one reader for the process, as one inference pool.
import { afterAll, beforeAll, expect, setDefaultTimeout, spyOn, test } from "bun:test";
import { GALLERY_MANIFEST_KEY, GALLERY_PREFIX } from "../../roles/deployment.ts";
import { queryPhotos } from "../support/fixtures.ts";
import { waitFor } from "../support/waiting.ts";
import { enrollSampleSet, postImage, startService, type EmbeddedService } from "./support.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(60_000);

let service: EmbeddedService;
beforeAll(async () => {
  service = await startService({ apiToken: "test-token", scaleInAfterMs: 300 });
});
afterAll(() => service?.stop());

const allStopped = async () => (await service.context.cloud.fleet.list()).every((instance) => instance.state === "stopped" || instance.state === "terminated");

// A new reader would read the manifest and then every log entry from the first; the shared one, already at the last
// change, only lists the log after it and reads nothing.
test("an app instance started after a scale-in does not load the unchanged gallery again", async () => {
  await enrollSampleSet(service);
  const [query] = queryPhotos();
  expect((await postImage(service.url, query!.file)).status).toBe(200);
  await waitFor("every instance to stop", async () => ((await allStopped()) ? true : undefined), 20_000);
  const galleryBucket = service.context.cloud.blobs.bucket(service.context.names.galleryBucket);
  const reads = spyOn(galleryBucket, "get");
  const versionedReads = spyOn(galleryBucket, "read");
  try {
    const response = await postImage(service.url, query!.file);
    expect(response.status).toBe(200);
    expect(await response.text()).toEndWith(`:${query!.person}`);
    expect(versionedReads.mock.calls.filter(([key]) => key === GALLERY_MANIFEST_KEY)).toEqual([]);
    expect(reads.mock.calls.filter(([key]) => key.startsWith(GALLERY_PREFIX))).toEqual([]);
  } finally {
    reads.mockRestore();
    versionedReads.mockRestore();
  }
});
