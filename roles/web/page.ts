/**
 * The operator's page at `GET /`: rendered here with the live figures of the moment, then kept live by its script
 * (`page/operator.js`) from `/stats`; a try-it box over `/v1/recognize`; the subjects with enroll and delete. Every
 * file it loads is served by this plugin (uPlot from its npm package), and its CSP allows nothing else.
 */
import { join } from "node:path";
import { Elysia, t } from "elysia";
import { packageFile, staticFiles } from "./assets.ts";
import type { Stats } from "./metrics.ts";

/** Only this origin's files and requests; the uploaded photo is shown from a blob: URL. No inline scripts or styles. */
export const PAGE_CSP = "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const ASSETS = {
  "/page/operator.js": join(import.meta.dir, "page", "operator.js"),
  "/page/operator.css": join(import.meta.dir, "page", "operator.css"),
  "/page/favicon.svg": join(import.meta.dir, "page", "favicon.svg"),
  "/page/uPlot.iife.min.js": packageFile("uplot/dist/uPlot.iife.min.js"),
  "/page/uPlot.min.css": packageFile("uplot/dist/uPlot.min.css"),
};

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);

function figure(id: string, label: string, value: string): string {
  return `<div class="figure"><span class="label">${escapeHtml(label)}</span><span class="value" id="${id}">${escapeHtml(value)}</span></div>`;
}

export function renderPage(stats: Stats): string {
  const running = stats.instances ? String(stats.instances.running ?? 0) : "–";
  const queue = stats.queue ? `${stats.queue.visible} / ${stats.queue.inFlight}` : "–";
  const ms = (value: number) => `${Math.round(value)} ms`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>facefleet</title>
<link rel="icon" href="/page/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/page/uPlot.min.css">
<link rel="stylesheet" href="/page/operator.css">
<script src="/page/uPlot.iife.min.js" defer></script>
<script src="/page/operator.js" defer></script>
</head>
<body>
<header><h1>facefleet</h1><nav><a href="/docs">API docs</a> · <a href="/metrics">metrics</a></nav></header>
<form id="token-form" class="panel" hidden>
  <label for="token-input">Admin token</label>
  <input id="token-input" type="password" autocomplete="off" required>
  <button type="submit">Use token</button>
  <p class="hint" id="token-hint">Kept in this tab only (sessionStorage). Embedded, it is in the data directory's <code>api-token</code> file.</p>
</form>
<main>
<section class="panel" id="live">
  <h2>Live</h2>
  <div class="figures">
    ${figure("queue-depth", "queue visible / in flight", queue)}
    ${figure("fleet-size", "app instances running", running)}
    ${figure("latency-p50", "p50 (1 min)", ms(stats.latencyMs.p50))}
    ${figure("latency-p90", "p90", ms(stats.latencyMs.p90))}
    ${figure("latency-p99", "p99", ms(stats.latencyMs.p99))}
    ${figure("gallery-size", "subjects / faces", `${stats.subjects} / ${stats.faces}`)}
  </div>
  <div id="fleet-chart" class="chart"></div>
  <div id="latency-chart" class="chart"></div>
</section>
<section class="panel" id="try-it">
  <h2>Try it</h2>
  <form id="recognize-form">
    <input id="recognize-file" name="image" type="file" accept="image/jpeg,image/png,image/webp" required>
    <button type="submit">Recognize</button>
  </form>
  <p class="status" id="recognize-status" role="status"></p>
  <div class="photo" id="photo" hidden><img id="photo-image" alt="the uploaded photo"></div>
</section>
<section class="panel" id="subjects">
  <h2>Subjects</h2>
  <form id="enroll-form">
    <input id="enroll-name" name="name" placeholder="name" required maxlength="100">
    <input id="enroll-files" name="image" type="file" accept="image/jpeg,image/png,image/webp" multiple required>
    <button type="submit">Enroll</button>
  </form>
  <p class="status" id="subjects-status" role="status"></p>
  <table><thead><tr><th>name</th><th>faces</th><th></th></tr></thead><tbody id="subjects-list"></tbody></table>
  <p class="pager"><button type="button" id="subjects-previous" disabled>previous</button> <span id="subjects-page"></span> <button type="button" id="subjects-next" disabled>next</button></p>
</section>
</main>
</body>
</html>
`;
}

export function operatorPage(stats: () => Stats) {
  return new Elysia({ name: "operator-page" })
    .get("/", () => new Response(renderPage(stats()), { headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": PAGE_CSP } }), {
      response: { 200: t.String({ description: "The operator's page (HTML)" }) },
      detail: { hide: true },
    })
    .use(staticFiles("page", ASSETS));
}
