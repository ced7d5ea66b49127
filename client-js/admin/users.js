// Users: every account, searched on the server and paged; one account's page (documents,
// sessions, blobs); and the actions on an account, each confirmed first.

import { $, api, bytes, el, when } from "./common.js";

const PAGE = 50;
let offset = 0;
let rows = [];
let sort = { key: "username", dir: 1 };
let searchTimer = null;

export async function loadUsers() {
  $("users-error").textContent = "";
  try {
    const q = encodeURIComponent($("search").value.trim());
    const page = await api("GET", `/v1/admin/users?offset=${offset}&limit=${PAGE}${q ? `&q=${q}` : ""}`);
    rows = page.users;
    $("page-info").textContent = page.total ? `${offset + 1}–${offset + rows.length} of ${page.total}${q ? " matching" : ""}` : "no accounts match";
    $("prev").disabled = offset === 0;
    $("next").disabled = page.next_offset == null;
    renderUsers();
  } catch (e) {
    $("users-error").textContent = e.message;
  }
}

function tags(u) {
  const out = [];
  if (u.admin) out.push(el("span", { className: "tag" }, "admin"));
  if (u.disabled) out.push(el("span", { className: "tag off" }, "disabled"));
  return out;
}

function renderUsers() {
  const shown = [...rows].sort((a, b) => (a[sort.key] < b[sort.key] ? -sort.dir : a[sort.key] > b[sort.key] ? sort.dir : 0));
  $("user-rows").replaceChildren(
    ...shown.map((u) =>
      el(
        "tr",
        {},
        el("td", {}, el("a", { href: `#user/${encodeURIComponent(u.username)}`, className: "user-link" }, u.username)),
        el("td", {}, when(u.createdAt)),
        el("td", {}, ...tags(u)),
        el("td", {}, ...actionButtons(u, loadUsers, $("users-error"))),
      ),
    ),
  );
}

/** The buttons acting on account `u`; `after` reloads whatever shows it. */
function actionButtons(u, after, errors) {
  const button = (text, action, cls = "") =>
    el("button", { className: cls, dataset: { user: u.username, action }, onclick: () => act(u, action, after, errors) }, text);
  return [
    button(u.disabled ? "Enable" : "Disable", u.disabled ? "enable" : "disable", u.disabled ? "" : "danger"),
    button("New password", "password", "ghost"),
    button(u.admin ? "Remove admin" : "Make admin", u.admin ? "unadmin" : "admin", "ghost"),
    button("Delete", "delete", "ghost danger"),
  ];
}

/** What each action asks first, and the call it makes once confirmed. */
const ACTS = {
  disable: (u) => [`Disable ${u}? Their open connections close and their tokens stop working.`, "POST", "disable"],
  enable: (u) => [`Enable ${u} again?`, "POST", "enable"],
  admin: (u) => [`Make ${u} an admin? They can then do everything this page does.`, "POST", "admin"],
  unadmin: (u) => [`Withdraw admin from ${u}? (Names in ADMIN_USERS stay admins.)`, "DELETE", "admin"],
  delete: (u) => [`Delete ${u} and everything they own? This cannot be undone.`, "DELETE", ""],
  sessions: (u) => [`End every session of ${u}? Their open connections are signed out; their password stays.`, "DELETE", "sessions"],
};

/** Runs an action on account `u` after confirming it; a new password is asked for. */
async function act(u, action, after, errors) {
  errors.textContent = "";
  const name = encodeURIComponent(u.username);
  try {
    if (action === "password") {
      const password = prompt(`New password for ${u.username} (8 characters or more). Their sessions end.`);
      if (!password) return;
      const { revokedSessions } = await api("POST", `/v1/admin/users/${name}/password`, { password });
      errors.textContent = `Password set; ${revokedSessions} session(s) ended.`;
      return after();
    }
    const [question, method, tail] = ACTS[action](u.username);
    if (!confirm(question)) return;
    await api(method, `/v1/admin/users/${name}${tail ? `/${tail}` : ""}`);
    if (action === "delete" && location.hash.startsWith("#user/")) location.hash = "#users";
    else await after();
  } catch (e) {
    errors.textContent = e.message;
  }
}

$("search").oninput = () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    offset = 0;
    loadUsers();
  }, 200);
};
$("prev").onclick = () => {
  offset = Math.max(0, offset - PAGE);
  loadUsers();
};
$("next").onclick = () => {
  offset += PAGE;
  loadUsers();
};
for (const b of document.querySelectorAll("button.sort")) {
  b.onclick = () => {
    sort = { key: b.dataset.key, dir: sort.key === b.dataset.key ? -sort.dir : 1 };
    renderUsers();
  };
}

// ---- one account -----------------------------------------------------------------------

export async function showUser(name) {
  const errors = $("user-error");
  errors.textContent = "";
  $("user-name").textContent = name;
  try {
    const u = await api("GET", `/v1/admin/users/${encodeURIComponent(name)}`);
    $("user-tags").replaceChildren(...tags(u));
    $("user-created").textContent = `since ${when(u.createdAt)}`;
    $("user-actions").replaceChildren(
      ...actionButtons(u, () => showUser(name), errors),
      el("button", { className: "ghost", dataset: { action: "sessions" }, onclick: () => act(u, "sessions", () => showUser(name), errors) }, "End all sessions"),
    );
    $("user-docs").replaceChildren(
      ...u.documents.map((d) => {
        const key = d.name ? `${u.username}/${d.name}` : u.username;
        return el(
          "tr",
          {},
          el("td", {}, el("a", { href: `#data/${key}`, className: "doc-link" }, d.name ?? "(default document)")),
          el("td", {}, `v${d.version}`),
          el("td", {}, bytes(d.size ?? 0)),
          el("td", {}, when(d.lastUpdate?.at)),
          el("td", { className: "muted small" }, shares(d)),
        );
      }),
    );
    $("user-docs-more").hidden = !u.moreDocuments;
    $("user-sessions").replaceChildren(
      ...(u.sessions.length
        ? u.sessions.map((s) =>
            el("tr", {}, el("td", {}, el("code", {}, s.id.slice(0, 8))), el("td", {}, when(s.createdAt)), el("td", {}, when(s.lastUsed)), el("td", {}, s.open ? `${s.open} open` : "—"), el("td", {}, s.scope), el("td", {}, when(s.expires))),
          )
        : [el("tr", {}, el("td", { colSpan: 6, className: "muted" }, "No sessions."))]),
    );
    const quota = u.blobs.quota ? ` of ${bytes(u.blobs.quota)}` : "";
    $("user-blobs").textContent = `${bytes(u.blobs.used)}${quota} in ${u.blobs.list.length}${u.blobs.list.length === 50 ? "+" : ""} blob(s)`;
    const meter = $("user-quota");
    meter.hidden = !u.blobs.quota;
    meter.value = u.blobs.quota ? Math.min(1, u.blobs.used / u.blobs.quota) : 0;
  } catch (e) {
    errors.textContent = e.status === 404 ? `There is no account named ${name}.` : e.message;
  }
}

function shares(d) {
  const parts = [];
  if (d.collaborators?.length) parts.push(`writers: ${d.collaborators.join(", ")}`);
  if (d.readers?.length) parts.push(`readers: ${d.readers.join(", ")}`);
  return parts.join(" · ") || "private";
}
