// The operator's page's script (served as is; no build step). Loaded by roles/web/page.ts, whose CSP allows
// only this origin: every request below goes to the service itself.
"use strict";

const TOKEN_KEY = "facefleet.token";
const POLL_MS = 2000;
/** Points kept on the charts: ten minutes at one point per poll. */
const HISTORY = 300;

const byId = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- The token: asked once, kept in this tab. ---

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function askForToken(hint) {
  byId("token-form").hidden = false;
  if (hint) byId("token-hint").textContent = hint;
  byId("token-input").focus();
}

class RequestFailed extends Error {}

/** A call to the admin API with the tab's token; a refused token asks for it again. */
async function api(path, init = {}) {
  if (!token()) {
    askForToken();
    throw new RequestFailed("enter the admin token first");
  }
  const response = await fetch(path, { ...init, headers: { ...init.headers, authorization: `Bearer ${token()}` } });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    askForToken("That token was refused: enter the admin token again.");
  }
  if (!response.ok) throw new RequestFailed(body.message ?? `HTTP ${response.status}`);
  return body;
}

// --- Live figures and charts from /stats. ---

const history = { time: [], visible: [], inFlight: [], running: [], p50: [], p90: [], p99: [] };
let fleetChart;
let latencyChart;

function chart(target, title, series) {
  const width = Math.max(300, target.clientWidth || 600);
  return new uPlot(
    { title, width, height: 180, series: [{}, ...series], axes: [{}, { size: 50 }], scales: { x: { time: true } } },
    [[], ...series.map(() => [])],
    target,
  );
}

function showStats(stats) {
  byId("queue-depth").textContent = stats.queue ? `${stats.queue.visible} / ${stats.queue.inFlight}` : "–";
  byId("fleet-size").textContent = stats.instances ? String(stats.instances.running ?? 0) : "–";
  byId("latency-p50").textContent = `${Math.round(stats.latencyMs.p50)} ms`;
  byId("latency-p90").textContent = `${Math.round(stats.latencyMs.p90)} ms`;
  byId("latency-p99").textContent = `${Math.round(stats.latencyMs.p99)} ms`;
  byId("gallery-size").textContent = `${stats.subjects} / ${stats.faces}`;

  const points = {
    time: Date.now() / 1000,
    visible: stats.queue?.visible ?? null,
    inFlight: stats.queue?.inFlight ?? null,
    running: stats.instances?.running ?? null,
    p50: stats.latencyMs.p50,
    p90: stats.latencyMs.p90,
    p99: stats.latencyMs.p99,
  };
  for (const [key, value] of Object.entries(points)) {
    history[key].push(value);
    if (history[key].length > HISTORY) history[key].shift();
  }
  if (typeof uPlot === "undefined") return;
  fleetChart ??= chart(byId("fleet-chart"), "queue and fleet", [
    { label: "visible", stroke: "#c33" },
    { label: "in flight", stroke: "#e90" },
    { label: "running", stroke: "#36c" },
  ]);
  latencyChart ??= chart(byId("latency-chart"), "POST latency, ms (1-minute window)", [
    { label: "p50", stroke: "#393" },
    { label: "p90", stroke: "#e90" },
    { label: "p99", stroke: "#c33" },
  ]);
  fleetChart.setData([history.time, history.visible, history.inFlight, history.running]);
  latencyChart.setData([history.time, history.p50, history.p90, history.p99]);
}

async function pollStats() {
  try {
    const response = await fetch("/stats");
    if (response.ok) showStats(await response.json());
  } catch {
    // The service is restarting or unreachable: the next poll tries again.
  }
  setTimeout(pollStats, POLL_MS);
}

// --- Try it: every face's box with its name and similarity. ---

function faceLabel(face) {
  if (face.match) return `${face.match.subject} ${face.match.similarity.toFixed(2)}`;
  const best = face.candidates?.[0];
  return best ? `unknown (${best.subject} ${best.similarity.toFixed(2)})` : "unknown";
}

function drawFaces(answer) {
  const photo = byId("photo");
  for (const box of photo.querySelectorAll(".face-box")) box.remove();
  for (const face of answer.faces) {
    const box = element("div", face.match ? "face-box known" : "face-box");
    box.dataset.subject = face.match?.subject ?? "";
    box.style.left = `${face.boxRatio.left * 100}%`;
    box.style.top = `${face.boxRatio.top * 100}%`;
    box.style.width = `${face.boxRatio.width * 100}%`;
    box.style.height = `${face.boxRatio.height * 100}%`;
    box.append(element("span", "face-label", faceLabel(face)));
    photo.append(box);
  }
}

async function recognize(event) {
  event.preventDefault();
  const file = byId("recognize-file").files[0];
  if (!file) return;
  const status = byId("recognize-status");
  const image = byId("photo-image");
  if (image.src) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(file);
  byId("photo").hidden = false;
  drawFaces({ faces: [] });
  status.textContent = "recognizing…";
  const form = new FormData();
  form.append("image", file);
  try {
    const answer = await api("/v1/recognize", { method: "POST", body: form });
    drawFaces(answer);
    const known = answer.faces.filter((face) => face.match).length;
    status.textContent = `${answer.faces.length} face(s), ${known} known, in ${Math.round(answer.timings.total)} ms`;
  } catch (error) {
    status.textContent = error.message;
  }
}

// --- Subjects: list (a page at a time), enroll by upload, delete. ---

const PAGE_SIZE = 50;
let subjectsPage = 1;

async function loadSubjects() {
  const status = byId("subjects-status");
  try {
    let answer = await api(`/v1/subjects?page=${subjectsPage}&size=${PAGE_SIZE}`);
    const pages = Math.max(1, Math.ceil(answer.total / PAGE_SIZE));
    if (subjectsPage > pages) {
      // The last page emptied (a delete): show the one before.
      subjectsPage = pages;
      answer = await api(`/v1/subjects?page=${subjectsPage}&size=${PAGE_SIZE}`);
    }
    byId("subjects-page").textContent = `page ${subjectsPage} of ${pages}, ${answer.total} subject(s)`;
    byId("subjects-previous").disabled = subjectsPage <= 1;
    byId("subjects-next").disabled = subjectsPage >= pages;
    const rows = answer.subjects.map((subject) => {
      const name = subject.name;
      const row = element("tr");
      row.dataset.subject = name;
      row.append(element("td", "", name), element("td", "", String(subject.faces)));
      const remove = element("button", "delete", "delete");
      remove.type = "button";
      remove.dataset.subject = name;
      const cell = element("td");
      cell.append(remove);
      row.append(cell);
      return row;
    });
    byId("subjects-list").replaceChildren(...rows);
  } catch (error) {
    status.textContent = error.message;
  }
}

async function enroll(event) {
  event.preventDefault();
  const name = byId("enroll-name").value.trim();
  const files = [...byId("enroll-files").files];
  const status = byId("subjects-status");
  if (!name || files.length === 0) return;
  const form = new FormData();
  for (const file of files) form.append("image", file);
  status.textContent = `enrolling ${files.length} photo(s) of ${name}…`;
  try {
    const answer = await api(`/v1/subjects/${encodeURIComponent(name)}/faces?face=largest`, { method: "POST", body: form });
    // Several photos are answered part by part: say which were refused and why.
    const refused = (answer.results ?? []).filter((part) => part.error).map((part) => `${part.file}: ${part.message}`);
    status.textContent = [`enrolled ${name} (${answer.faces} face(s))`, ...refused].join("; ");
    byId("enroll-form").reset();
  } catch (error) {
    status.textContent = `${name}: ${error.message}`;
  }
  await loadSubjects();
}

async function removeSubject(event) {
  const button = event.target.closest("button.delete");
  if (!button) return;
  const name = button.dataset.subject;
  const status = byId("subjects-status");
  try {
    await api(`/v1/subjects/${encodeURIComponent(name)}`, { method: "DELETE" });
    status.textContent = `deleted ${name}`;
  } catch (error) {
    status.textContent = `${name}: ${error.message}`;
  }
  await loadSubjects();
}

function useToken(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, byId("token-input").value.trim());
  byId("token-form").reset();
  byId("token-form").hidden = true;
  void loadSubjects();
}

document.addEventListener("DOMContentLoaded", () => {
  byId("token-form").addEventListener("submit", useToken);
  byId("recognize-form").addEventListener("submit", recognize);
  byId("enroll-form").addEventListener("submit", enroll);
  byId("subjects-list").addEventListener("click", removeSubject);
  byId("subjects-previous").addEventListener("click", () => {
    subjectsPage--;
    void loadSubjects();
  });
  byId("subjects-next").addEventListener("click", () => {
    subjectsPage++;
    void loadSubjects();
  });
  if (token()) void loadSubjects();
  else askForToken();
  void pollStats();
});
