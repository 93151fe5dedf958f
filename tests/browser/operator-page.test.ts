// The operator's page in a real browser (Debian's chromium through playwright-core, one launch): the token asked
// once, two people enrolled by upload, a photo of both answered with two named boxes, one deleted, the docs page
// rendered; and no request either page made went anywhere but the service.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { startService, type EmbeddedService } from "../service/support.ts";
import { enrollmentPhotos, TWO_FACES } from "../support/fixtures.ts";

const CHROMIUM = "/usr/bin/chromium";
/** The two people of the sample set's photo of two, enrolled from their photos in people/ (the photo of two is not among them). */
const PEOPLE = TWO_FACES.leftToRight;
const photosOf = (person: string) => enrollmentPhotos().filter((photo) => photo.person === person).map((photo) => photo.file);
const ready = existsSync(CHROMIUM);
if (!ready) console.warn(`skipping the browser test: it needs ${CHROMIUM} (apt-get install chromium)`);

let service: EmbeddedService;
/** A fresh profile in a temporary folder. */
let browser: BrowserContext;

beforeAll(async () => {
  if (!ready) return;
  service = await startService();
  browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "facefleet-chromium-")), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});
afterAll(async () => {
  await browser?.close();
  await service?.stop();
});

test.skipIf(!ready)(
  "enroll two people, recognize both in one photo, delete one, open the docs, and every request stays on the service",
  async () => {
    const page = await browser.newPage();
    const requested: string[] = [];
    const problems: string[] = [];
    page.on("request", (request) => requested.push(request.url()));
    page.on("response", (response) => response.status() >= 400 && problems.push(`${response.status()} ${response.url()}`));
    // Console errors include CSP violations; failed loads are reported with their URL above.
    page.on("console", (message) => message.type() === "error" && !message.text().startsWith("Failed to load resource") && problems.push(message.text()));
    page.on("pageerror", (error) => problems.push(error.message));

    await page.goto(service.url);
    await page.locator("#token-input").fill(service.auth.authorization.replace(/^Bearer /, ""));
    await page.locator("#token-form button").click();
    await expect(page.locator("#token-form").isHidden()).resolves.toBe(true);

    for (const person of PEOPLE) {
      await page.locator("#enroll-name").fill(person);
      await page.locator("#enroll-files").setInputFiles(photosOf(person));
      await page.locator("#enroll-form button").click();
      await page.locator("#subjects-status", { hasText: new RegExp(`^(enrolled )?${person}[ :]`) }).waitFor({ timeout: 20_000 });
      expect(await page.locator("#subjects-status").textContent()).toBe(`enrolled ${person} (${photosOf(person).length} face(s))`);
      await page.locator(`#subjects-list tr[data-subject="${person}"]`).waitFor();
    }

    await page.locator("#recognize-file").setInputFiles(TWO_FACES.file);
    await page.locator("#recognize-form button").click();
    const named = page.locator(".face-box.known");
    await named.nth(1).waitFor({ timeout: 20_000 });
    const boxes = await Promise.all((await named.all()).map(async (box) => ({ subject: await box.getAttribute("data-subject"), left: (await box.boundingBox())!.x })));
    expect(boxes.toSorted((a, b) => a.left - b.left).map((box) => box.subject)).toEqual([...PEOPLE]);
    for (const label of await named.locator(".face-label").allTextContents()) expect(label).toMatch(/^\S+ \d\.\d\d$/);

    // The token is kept in the tab: a reload does not ask again.
    await page.reload();
    await page.locator(`#subjects-list tr[data-subject="${PEOPLE[0]}"]`).waitFor({ timeout: 10_000 });
    expect(await page.locator("#token-form").isHidden()).toBe(true);

    await page.locator(`#subjects-list button.delete[data-subject="${PEOPLE[0]}"]`).click();
    await page.locator(`#subjects-list tr[data-subject="${PEOPLE[0]}"]`).waitFor({ state: "detached", timeout: 10_000 });
    await page.locator(`#subjects-list tr[data-subject="${PEOPLE[1]}"]`).waitFor();
    expect(await page.locator("#subjects-page").textContent()).toBe("page 1 of 1, 1 subject(s)");
    await page.locator("#fleet-size", { hasNotText: "–" }).waitFor({ timeout: 10_000 });

    // The docs page renders every route from the local spec with the local viewer.
    await page.goto(`${service.url}/docs`);
    await page.locator(".opblock-summary-path", { hasText: "/v1/recognize" }).waitFor({ timeout: 15_000 });
    // An operation opened, its schemas and examples drawn, under the docs' CSP (a violation is a console error).
    await page.locator(".opblock-summary-path", { hasText: "/v1/recognize" }).click();
    await page.locator(".try-out__btn").first().waitFor({ timeout: 5_000 });

    const origin = new URL(service.url).origin;
    const elsewhere = requested.filter((url) => !url.startsWith(`${origin}/`) && !url.startsWith(`blob:${origin}/`));
    expect(elsewhere).toEqual([]);
    expect(requested).toEqual(expect.arrayContaining([`${origin}/page/uPlot.iife.min.js`, `${origin}/v1/recognize`, `${origin}/stats`, `${origin}/openapi/json`]));
    expect(problems).toEqual([]);
  },
  90_000,
);
