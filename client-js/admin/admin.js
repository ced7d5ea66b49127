// The admin dashboard's shell: signing in, the tabs (by the URL's hash, so the back button
// and links work) and the overview. Each other screen is its own module; every one of them
// speaks the admin API a script would, nothing more.

import { $, api, bytes, el, session, setToken } from "./common.js";
import { loadUsers, showUser } from "./users.js";
import { closeData, showData } from "./data.js";
import { loadAudit, loadOperations } from "./operations.js";
import { loadIntegrations, stopFeed } from "./integrations.js";

let refresh = null;

// ---- signing in ----------------------------------------------------------------------

$("signin-form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("signin-error").textContent = "";
  const res = await fetch("/v1/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    $("signin-error").textContent = data.message ?? "Sign-in failed.";
    return;
  }
  setToken(data.token);
  start();
};

$("signout").onclick = () => signOut("");
session.onRefused = signOut;

function signOut(message) {
  clearInterval(refresh);
  closeData();
  stopFeed();
  setToken(null);
  for (const s of document.querySelectorAll(".tab")) s.hidden = true;
  $("tabs").hidden = $("signout").hidden = true;
  $("node").textContent = "";
  $("signin").hidden = false;
  $("signin-error").textContent = message;
}

// ---- tabs ----------------------------------------------------------------------------

/** `#users`, `#user/ann`, `#data/ann/notes`: the screen, and what it shows. */
function show() {
  const [tab, ...rest] = (location.hash || "#overview").slice(1).split("/");
  const arg = decodeURIComponent(rest.join("/"));
  const section = { user: "user", data: "data" }[tab] ?? tab;
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== section;
  const navTab = tab === "user" ? "users" : tab;
  for (const a of document.querySelectorAll("#tabs a")) a.setAttribute("aria-current", a.dataset.tab === navTab ? "page" : "false");
  if (tab !== "data") closeData();
  if (tab !== "integrations") stopFeed();
  if (tab === "users") loadUsers();
  if (tab === "user") showUser(arg);
  if (tab === "data") showData(arg);
  if (tab === "operations") loadOperations();
  if (tab === "integrations") loadIntegrations();
  if (tab === "audit") loadAudit();
}
window.addEventListener("hashchange", () => session.token && show());

// `/` jumps to the screen's search box, as on most dashboards.
document.addEventListener("keydown", (ev) => {
  if (ev.key !== "/" || ev.target.closest("input, textarea")) return;
  const box = document.querySelector(".tab:not([hidden]) input[type=search]");
  if (box) {
    ev.preventDefault();
    box.focus();
  }
});

async function start() {
  $("signin").hidden = true;
  $("tabs").hidden = $("signout").hidden = false;
  try {
    await loadOverview();
  } catch {
    return; // signed out by `api`
  }
  show();
  clearInterval(refresh);
  refresh = setInterval(() => loadOverview().catch(() => {}), 10_000);
}

// ---- overview ------------------------------------------------------------------------

const COUNTERS = [
  ["users", "Users"],
  ["documents", "Documents"],
  ["connections", "Connections"],
  ["sessions", "Sessions"],
  ["watches", "Watches"],
  ["commitsPerSecond", "Commits/s"],
  ["dataBytes", "Data on disk", bytes],
  ["blobBytes", "Blobs", bytes],
];

const round = (v) => (Math.round(v * 10) / 10).toLocaleString();
const CHARTS = [
  ["connections", "Connections"],
  ["watches", "Watches"],
  ["commitsPerSecond", "Commits/s"],
  ["deliveriesPerSecond", "Deliveries/s"],
  ["errors", "Errors/s", (s) => Object.values(s.errorsPerSecond ?? {}).reduce((a, b) => a + b, 0)],
  ["cacheHitRate", "Cache hit rate", (s) => s.cacheHitRate ?? 0, (v) => `${Math.round(v * 100)}%`],
  ["diskBytes", "Disk", (s) => s.diskBytes ?? 0, bytes],
];

async function loadOverview() {
  const o = await api("GET", "/v1/admin/overview");
  $("node").textContent = `node ${o.node} · ${o.store}`;
  $("ready").textContent = o.ready ? "ready" : "not ready";
  $("ready").className = `pill ${o.ready ? "ok" : "bad"}`;
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  $("counters").replaceChildren(
    ...COUNTERS.map(([key, label, format = (v) => v.toLocaleString()]) => card("counter", label, format(o.stats[key] ?? 0))),
  );
  $("charts").replaceChildren(
    ...CHARTS.map(([key, label, pick = (s) => s[key], format = round]) => {
      const values = o.samples.map(pick);
      const c = card("chart", label, format(values.at(-1) ?? 0));
      c.dataset.chart = key;
      c.append(sparkline(values));
      return c;
    }),
    errorsByCode(o.samples),
  );
}

/** The hour's errors by wire code: counts from the per-second rates of each 10 s sample. */
function errorsByCode(samples) {
  const totals = {};
  for (const s of samples) {
    for (const [code, rate] of Object.entries(s.errorsPerSecond ?? {})) totals[code] = (totals[code] ?? 0) + rate * 10;
  }
  const rows = Object.entries(totals).sort((a, b) => b[1] - a[1]);
  const c = card("chart", "Errors by code, last hour", rows.length ? "" : "none");
  c.dataset.chart = "errorsByCode";
  const max = Math.max(1, ...rows.map(([, n]) => n));
  c.append(
    ...rows.slice(0, 6).map(([code, n]) =>
      el("div", { className: "bar" }, el("code", {}, code), el("span", { className: "fill", style: `width:${(n / max) * 100}%` }), el("span", { className: "n" }, Math.round(n).toLocaleString())),
    ),
  );
  return c;
}

function card(kind, label, value) {
  return el("div", { className: kind }, el("div", { className: "label" }, label), el("div", { className: kind === "counter" ? "value" : "now" }, value));
}

/** A line over the hour's samples, scaled to its own maximum. */
function sparkline(values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 100 30");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const max = Math.max(1e-9, ...values);
  const step = values.length > 1 ? 100 / (values.length - 1) : 0;
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", values.map((v, i) => `${(i * step).toFixed(2)},${(29 - (v / max) * 28).toFixed(2)}`).join(" "));
  svg.append(line);
  return svg;
}

if (session.token) start();
else signOut("");
