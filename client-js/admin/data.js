// Data: any document by its key, read-only until the admin chooses to edit. A collapsible
// JSON view with search, the access lists, the change log newest first, and the document's
// changes as they commit (an EventSource on the admin API). An edit is an ordinary versioned
// update `by` the admin, refused if someone else changed the document first.

import { $, api, el, session, when } from "./common.js";

const LOG_PAGE = 20;
let key = "";
let doc = null;
let live = null;
let oldestShown = null;

/** Stops watching (leaving the screen, signing out). */
export function closeData() {
  live?.close();
  live = null;
  setLive(false);
}

export async function showData(wanted) {
  $("doc-key").value = wanted;
  $("data-error").textContent = "";
  if (!wanted) {
    $("doc-view").hidden = true;
    return;
  }
  if (wanted === key && live) return; // already open and live
  closeData();
  key = wanted;
  try {
    doc = await api("GET", `/v1/admin/doc?key=${encodeURIComponent(key)}`);
  } catch (e) {
    $("doc-view").hidden = true;
    $("data-error").textContent = e.status === 404 ? `There is no document ${key}.` : e.message;
    return;
  }
  $("doc-view").hidden = false;
  stopEditing();
  render();
  await loadLog();
  watch();
}

$("doc-open").onsubmit = (ev) => {
  ev.preventDefault();
  const wanted = $("doc-key").value.trim();
  key = ""; // open again even if it is the same
  location.hash = `#data/${wanted}`;
  if (location.hash === `#data/${wanted}`) showData(wanted);
};

function render() {
  const m = doc.metadata;
  $("doc-title").textContent = key;
  $("doc-version").textContent = `v${m.version}`;
  $("doc-updated").textContent = m.lastUpdate ? `last change ${when(m.lastUpdate.at)} by ${m.lastUpdate.by}` : "";
  $("doc-access").replaceChildren(
    el("span", {}, el("b", {}, "owner "), m.username),
    el("span", {}, el("b", {}, "writers "), m.collaborators?.join(", ") || "—"),
    el("span", {}, el("b", {}, "readers "), m.readers?.join(", ") || "—"),
  );
  $("json").replaceChildren(tree(doc.userdata, 0));
  filter();
}

// ---- the JSON view -------------------------------------------------------------------

/** Objects and arrays as `<details>` (open two levels deep), scalars coloured by type. */
function tree(value, depth, label = null) {
  const head = label === null ? [] : [el("span", { className: "k" }, label), ": "];
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    const summary = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
    return el(
      "details",
      { open: depth < 2 },
      el("summary", {}, ...head, el("span", { className: "muted" }, summary)),
      ...entries.map(([k, v]) => tree(v, depth + 1, k)),
    );
  }
  const type = value === null ? "null" : typeof value;
  return el("div", { className: "leaf" }, ...head, el("span", { className: `v ${type}` }, JSON.stringify(value)));
}

/** Marks the rows whose key or value holds the search, opening the levels above them. */
function filter() {
  const q = $("json-search").value.trim().toLowerCase();
  let hits = 0;
  for (const row of $("json").querySelectorAll(".leaf, summary")) {
    const hit = q !== "" && row.textContent.toLowerCase().includes(q);
    row.classList.toggle("hit", hit);
    if (!hit) continue;
    hits++;
    for (let d = row.parentElement.closest("details"); d; d = d.parentElement.closest("details")) d.open = true;
  }
  $("json-hits").textContent = q ? `${hits} match${hits === 1 ? "" : "es"}` : "";
}
$("json-search").oninput = filter;
$("json-expand").onclick = () => $("json").querySelectorAll("details").forEach((d) => (d.open = true));
$("json-collapse").onclick = () => $("json").querySelectorAll("details").forEach((d, i) => (d.open = i === 0));

// ---- the change log ------------------------------------------------------------------

/** The newest page (`older` false), or the page before the oldest shown. */
async function loadLog(older = false) {
  const upto = older ? oldestShown - 1 : doc.metadata.version;
  const from = Math.max(1, upto - LOG_PAGE + 1);
  if (upto < 1) return;
  try {
    const page = await api("GET", `/v1/admin/doc/changes?key=${encodeURIComponent(key)}&from=${from}&to=${upto}&limit=${LOG_PAGE}`);
    const rows = page.changes.slice().reverse().map(logRow);
    if (older) $("log-rows").append(...rows);
    else $("log-rows").replaceChildren(...rows);
    oldestShown = page.changes[0]?.version ?? from;
    const trimmed = page.oldest && oldestShown <= page.oldest;
    $("log-older").hidden = oldestShown <= 1 || trimmed;
    $("log-note").textContent = trimmed && page.oldest > 1 ? `Older versions than v${page.oldest} are no longer kept.` : "";
  } catch (e) {
    $("data-error").textContent = e.message;
  }
}
$("log-older").onclick = () => loadLog(true);

function logRow(c) {
  const op = JSON.stringify(c.op ?? {});
  return el(
    "tr",
    { dataset: { version: c.version } },
    el("td", {}, `v${c.version}`),
    el("td", {}, when(c.at)),
    el("td", {}, c.by),
    el("td", {}, el("code", { className: "op", title: op }, op.length > 160 ? `${op.slice(0, 160)}…` : op)),
  );
}

// ---- live ----------------------------------------------------------------------------

function setLive(on) {
  $("doc-live").textContent = on ? "live" : "not live";
  $("doc-live").className = `pill ${on ? "ok" : "bad"}`;
}

/** Follows the document from the version shown: each change updates the view and the log. */
function watch() {
  const url = `/v1/admin/doc/events?key=${encodeURIComponent(key)}&since=${doc.metadata.version}${doc.metadata.incarnation ? `&incarnation=${doc.metadata.incarnation}` : ""}&token=${encodeURIComponent(session.token)}`;
  const source = new EventSource(url);
  live = source;
  source.onopen = () => setLive(true);
  source.onerror = () => setLive(false); // EventSource reconnects by itself, from Last-Event-ID
  source.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (!msg.data) return; // `watching`: the replay follows
    doc = msg.data;
    if (!editing()) render();
    if (msg.type === "change" && !msg.resync) {
      $("log-rows").prepend(logRow(msg));
      $("log-rows").firstChild.classList.add("fresh");
    } else {
      loadLog(); // a snapshot or a resync: the log is read again
    }
  };
}

// ---- editing -------------------------------------------------------------------------

const editing = () => !$("doc-editor").hidden;

function stopEditing() {
  $("doc-editor").hidden = true;
  $("doc-edit").hidden = false;
  $("edit-error").textContent = "";
}

$("doc-edit").onclick = () => {
  $("doc-text").value = JSON.stringify(doc.userdata, null, 2);
  $("doc-base").textContent = `v${doc.metadata.version}`;
  $("doc-editor").hidden = false;
  $("doc-edit").hidden = true;
  $("doc-text").focus();
};
$("doc-cancel").onclick = () => {
  stopEditing();
  render();
};
$("doc-text").onkeydown = (ev) => {
  if (ev.key === "Escape") $("doc-cancel").click();
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("doc-save").click();
};
$("doc-save").onclick = async () => {
  $("edit-error").textContent = "";
  let userdata;
  try {
    userdata = JSON.parse($("doc-text").value);
  } catch (e) {
    $("edit-error").textContent = `Not JSON: ${e.message}`;
    return;
  }
  const base = $("doc-base").textContent.slice(1);
  if (!confirm(`Save this as a new version of ${key}? It is recorded as your change, in the document's log and the audit log.`)) return;
  try {
    await api("PUT", `/v1/admin/doc?key=${encodeURIComponent(key)}`, userdata, { "If-Match": `"${base}"` });
    stopEditing();
    render();
  } catch (e) {
    $("edit-error").textContent =
      e.status === 412 ? `Someone changed it since v${base}; your text is kept. Cancel to see their version, then edit again.` : e.message;
  }
};
