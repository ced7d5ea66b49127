// Integrations: every webhook (anyone's and the admins' global ones) with how far behind it
// is and why it stopped, a global webhook registered here, and the change feed followed live,
// the way an integration follows it (an EventSource on `/v1/admin/feed`, resuming by cursor).

import { $, api, el, session, when } from "./common.js";

/** How many recent changes the live feed shows. */
const SHOWN = 100;
let source = null;

export async function loadIntegrations() {
  $("hooks-error").textContent = "";
  try {
    const [{ webhooks }, page] = await Promise.all([api("GET", "/v1/admin/webhooks"), api("GET", "/v1/admin/feed?limit=1")]);
    showHooks(webhooks, page.newest ?? 0);
  } catch (e) {
    $("hooks-error").textContent = e.message;
  }
}

function showHooks(hooks, newest) {
  $("hook-rows").replaceChildren(
    ...(hooks.length
      ? hooks.map((h) => {
          const state = h.paused
            ? el("span", { className: "pill bad", title: h.lastError ?? "" }, "paused")
            : h.failures
              ? el("span", { className: "pill bad", title: h.lastError ?? "" }, `retrying (${h.failures})`)
              : el("span", { className: "pill ok" }, "delivering");
          const actions = [
            h.paused ? el("button", { className: "ghost", onclick: () => act("POST", `/v1/me/webhooks/${h.id}/resume`) }, "Resume") : null,
            el("button", { className: "ghost danger", onclick: () => confirm(`Remove the webhook to ${h.url}? Nothing more is posted to it.`) && act("DELETE", `/v1/me/webhooks/${h.id}`) }, "Remove"),
          ];
          return el(
            "tr",
            { dataset: { id: h.id } },
            el("td", {}, h.global ? el("span", { className: "tag" }, "global") : h.owner),
            el("td", { className: "mono url" }, h.url),
            el("td", { className: "small" }, h.docs.length ? h.docs.join(", ") : "all", " · ", h.events.length ? h.events.join(", ") : "every event"),
            el("td", {}, String(h.delivered)),
            el("td", {}, String(Math.max(0, newest - h.cursor))),
            el("td", {}, state, h.paused || h.failures ? el("div", { className: "muted small" }, [h.paused, h.lastError].filter(Boolean).join(": ")) : null),
            el("td", { className: "actions" }, ...actions),
          );
        })
      : [el("tr", {}, el("td", { colSpan: 7, className: "muted" }, "No webhooks yet. Owners register theirs with POST /v1/me/webhooks; a global one below sees every document."))]),
  );
}

async function act(method, path) {
  try {
    await api(method, path);
  } catch (e) {
    $("hooks-error").textContent = e.message;
  }
  await loadIntegrations();
}

$("hook-form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("hooks-error").textContent = "";
  const docs = $("hook-docs").value.split(",").map((s) => s.trim()).filter(Boolean);
  const events = $("hook-events").value ? [$("hook-events").value] : [];
  try {
    const made = await api("POST", "/v1/admin/webhooks", { url: $("hook-url").value, docs, events });
    $("hook-secret").hidden = false;
    $("hook-secret-value").textContent = made.secret;
    $("hook-form").reset();
  } catch (e) {
    $("hooks-error").textContent = e.message;
  }
  await loadIntegrations();
};
$("hook-secret-copy").onclick = () => navigator.clipboard?.writeText($("hook-secret-value").textContent);

// ---- the change feed, live -------------------------------------------------------------

/** Follows the feed from the last few changes on; the rows are newest first. */
async function follow() {
  stopFeed();
  const { newest } = await api("GET", "/v1/admin/feed?limit=1");
  const after = Math.max(0, (newest ?? 0) - 20);
  $("feed-rows").replaceChildren();
  source = new EventSource(`/v1/admin/feed?after=${after}&token=${encodeURIComponent(session.token)}`);
  source.onopen = () => setLive(true);
  source.onerror = () => setLive(false); // it reconnects by itself, from Last-Event-ID
  source.onmessage = (ev) => {
    const c = JSON.parse(ev.data);
    if (c.type === "resync") return addRow(el("tr", {}, el("td", { colSpan: 6, className: "muted" }, "Changes were dropped before they could be shown (resync).")));
    const key = c.name ? `${c.username}/${c.name}` : c.username;
    const what = c.resync ? "no longer in the log" : c.op?.append ? "append" : c.op ? Object.keys(c.op).join(", ") : "";
    addRow(
      el(
        "tr",
        { className: "fresh", dataset: { cursor: c.cursor } },
        el("td", { className: "mono" }, String(c.cursor)),
        el("td", {}, el("a", { href: `#data/${key}` }, key)),
        el("td", {}, String(c.version)),
        el("td", {}, c.by ?? ""),
        el("td", { className: "mono op" }, what),
        el("td", { className: "small" }, when(c.at)),
      ),
    );
  };
  $("feed-follow").textContent = "Stop";
}

function addRow(row) {
  const rows = $("feed-rows");
  rows.prepend(row);
  while (rows.children.length > SHOWN) rows.lastElementChild.remove();
}

function setLive(on) {
  $("feed-live").textContent = on ? "live" : "reconnecting…";
  $("feed-live").className = `pill ${on ? "ok" : "bad"}`;
  $("feed-live").hidden = false;
}

/** Closes the live feed (leaving the screen, signing out). */
export function stopFeed() {
  source?.close();
  source = null;
  $("feed-live").hidden = true;
  $("feed-follow").textContent = "Follow live";
}

$("feed-follow").onclick = () => (source ? stopFeed() : follow().catch((e) => ($("hooks-error").textContent = e.message)));
