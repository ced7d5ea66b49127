// The admin dashboard: plain ES module over the admin API, nothing the API does not offer.
// The token lives in sessionStorage (gone with the tab), apart from the demo page's.

const $ = (id) => document.getElementById(id);
const KEY = "hearth.admin.token";
let token = sessionStorage.getItem(KEY);
let refresh = null;

/** An admin API call; a 401/403 sends the admin back to sign in. */
async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401 || res.status === 403) {
    signOut(res.status === 403 ? "This account is not an admin." : "Your session ended; sign in again.");
    throw new Error("not allowed");
  }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new Error(data?.message ?? res.statusText);
  return data;
}

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
  token = data.token;
  sessionStorage.setItem(KEY, token);
  start();
};

$("signout").onclick = () => signOut("");

function signOut(message) {
  clearInterval(refresh);
  token = null;
  sessionStorage.removeItem(KEY);
  for (const el of document.querySelectorAll(".tab")) el.hidden = true;
  $("tabs").hidden = $("signout").hidden = true;
  $("node").textContent = "";
  $("signin").hidden = false;
  $("signin-error").textContent = message;
}

// ---- tabs ----------------------------------------------------------------------------

function show() {
  const tab = (location.hash || "#overview").slice(1);
  for (const el of document.querySelectorAll(".tab")) el.hidden = el.id !== tab;
  for (const a of document.querySelectorAll("#tabs a")) a.setAttribute("aria-current", a.dataset.tab === tab ? "page" : "false");
  if (tab === "users") loadUsers();
  if (tab === "operations") loadSettings();
  if (tab === "audit") loadAudit();
}
window.addEventListener("hashchange", () => token && show());

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

const CHARTS = [
  ["connections", "Connections"],
  ["watches", "Watches"],
  ["commitsPerSecond", "Commits/s"],
  ["deliveriesPerSecond", "Deliveries/s"],
  ["errors", "Errors/s", (s) => Object.values(s.errorsPerSecond ?? {}).reduce((a, b) => a + b, 0)],
  ["cacheHitRate", "Cache hit rate", (s) => s.cacheHitRate ?? 0, (v) => `${Math.round(v * 100)}%`],
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
    ...CHARTS.map(([key, label, pick = (s) => s[key], format = (v) => (Math.round(v * 10) / 10).toLocaleString()]) => {
      const values = o.samples.map(pick);
      const el = card("chart", label, format(values.at(-1) ?? 0));
      el.append(sparkline(values));
      return el;
    }),
  );
}

function card(kind, label, value) {
  const el = document.createElement("div");
  el.className = kind;
  const l = document.createElement("div");
  l.className = "label";
  l.textContent = label;
  const v = document.createElement("div");
  v.className = kind === "counter" ? "value" : "now";
  v.textContent = value;
  el.append(l, v);
  return el;
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

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// ---- users ---------------------------------------------------------------------------

const PAGE = 50;
let offset = 0;
let rows = [];
let sort = { key: "username", dir: 1 };

async function loadUsers() {
  $("users-error").textContent = "";
  try {
    const page = await api("GET", `/v1/admin/users?offset=${offset}&limit=${PAGE}`);
    rows = page.users;
    $("page-info").textContent = `${offset + 1}–${offset + rows.length} of ${page.total}`;
    $("prev").disabled = offset === 0;
    $("next").disabled = page.next_offset == null;
    renderUsers();
  } catch (e) {
    $("users-error").textContent = e.message;
  }
}

function renderUsers() {
  const q = $("search").value.trim().toLowerCase();
  const shown = rows
    .filter((u) => u.username.includes(q))
    .sort((a, b) => (a[sort.key] < b[sort.key] ? -sort.dir : a[sort.key] > b[sort.key] ? sort.dir : 0));
  $("user-rows").replaceChildren(
    ...shown.map((u) => {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      name.textContent = u.username;
      const created = document.createElement("td");
      created.textContent = new Date(u.createdAt).toLocaleString();
      const status = document.createElement("td");
      for (const [on, text, cls] of [[u.admin, "admin", ""], [u.disabled, "disabled", "off"]]) {
        if (!on) continue;
        const tag = document.createElement("span");
        tag.className = `tag ${cls}`;
        tag.textContent = text;
        status.append(tag);
      }
      const actions = document.createElement("td");
      const button = (text, action, cls = "") => {
        const b = document.createElement("button");
        b.textContent = text;
        b.className = cls;
        b.dataset.user = u.username;
        b.dataset.action = action;
        b.onclick = () => act(u, action);
        return b;
      };
      actions.append(
        button(u.disabled ? "Enable" : "Disable", u.disabled ? "enable" : "disable", u.disabled ? "" : "danger"),
        button("New password", "password", "ghost"),
        button(u.admin ? "Remove admin" : "Make admin", u.admin ? "unadmin" : "admin", "ghost"),
        button("Delete", "delete", "ghost danger"),
      );
      tr.append(name, created, status, actions);
      return tr;
    }),
  );
}

/** What each action asks first, and the call it makes once confirmed. */
const ACTS = {
  disable: (u) => [`Disable ${u}? Their open connections close and their tokens stop working.`, "POST", "disable"],
  enable: (u) => [`Enable ${u} again?`, "POST", "enable"],
  admin: (u) => [`Make ${u} an admin? They can then do everything this page does.`, "POST", "admin"],
  unadmin: (u) => [`Withdraw admin from ${u}? (Names in ADMIN_USERS stay admins.)`, "DELETE", "admin"],
  delete: (u) => [`Delete ${u} and everything they own? This cannot be undone.`, "DELETE", ""],
};

/** Runs an action on account `u` after confirming it; a new password is asked for. */
async function act(u, action) {
  $("users-error").textContent = "";
  const name = encodeURIComponent(u.username);
  try {
    if (action === "password") {
      const password = prompt(`New password for ${u.username} (8 characters or more). Their sessions end.`);
      if (!password) return;
      const { revokedSessions } = await api("POST", `/v1/admin/users/${name}/password`, { password });
      $("users-error").textContent = `Password set; ${revokedSessions} session(s) ended.`;
      return;
    }
    const [question, method, tail] = ACTS[action](u.username);
    if (!confirm(question)) return;
    await api(method, `/v1/admin/users/${name}${tail ? `/${tail}` : ""}`);
    await loadUsers();
  } catch (e) {
    $("users-error").textContent = e.message;
  }
}

$("search").oninput = renderUsers;
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

// ---- audit log -----------------------------------------------------------------------

const ACTIONS = {
  disable: "disabled",
  enable: "enabled",
  delete_user: "deleted",
  create_user: "created",
  reset_password: "reset the password of",
  grant_admin: "made admin",
  revoke_admin: "withdrew admin from",
  backup: "took a backup",
  backup_download: "downloaded a backup",
  import: "imported personal-backend users",
};

/** The newest page (`append` false) or the next older one. */
async function loadAudit(append = false) {
  $("audit-error").textContent = "";
  try {
    const before = append ? $("older").dataset.next : "";
    const page = await api("GET", `/v1/admin/audit?limit=50${before ? `&before=${before}` : ""}`);
    const rows = page.lines.map((l) => {
      const tr = document.createElement("tr");
      for (const text of [new Date(l.at).toLocaleString(), l.by, ACTIONS[l.action] ?? l.action, l.target ?? ""]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      tr.dataset.action = l.action;
      return tr;
    });
    if (append) $("audit-rows").append(...rows);
    else $("audit-rows").replaceChildren(...rows);
    $("older").hidden = page.next == null;
    $("older").dataset.next = page.next ?? "";
  } catch (e) {
    $("audit-error").textContent = e.message;
  }
}
$("older").onclick = () => loadAudit(true);

// ---- operations ----------------------------------------------------------------------

async function loadSettings() {
  try {
    const { settings } = await api("GET", "/v1/admin/settings");
    $("settings-rows").replaceChildren(
      ...Object.entries(settings).map(([name, value]) => {
        const tr = document.createElement("tr");
        const n = document.createElement("td");
        n.textContent = name;
        const v = document.createElement("td");
        v.textContent = value === null ? "—" : Array.isArray(value) ? value.join(", ") || "—" : String(value);
        tr.append(n, v);
        return tr;
      }),
    );
  } catch (e) {
    $("backup-error").textContent = e.message;
  }
}

/** Downloads a fresh snapshot, showing how much has arrived of its announced length. */
$("backup").onclick = async () => {
  $("backup-error").textContent = "";
  $("backup").disabled = true;
  const bar = $("backup-progress");
  bar.hidden = false;
  bar.removeAttribute("value"); // indeterminate until the length is known
  $("backup-status").textContent = "taking a snapshot…";
  try {
    const res = await fetch("/v1/admin/backup", { headers: { Authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error((await res.json().catch(() => null))?.message ?? res.statusText);
    const total = Number(res.headers.get("content-length")) || 0;
    const reader = res.body.getReader();
    const chunks = [];
    let got = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      got += value.length;
      if (total) bar.value = got / total;
      $("backup-status").textContent = `${bytes(got)}${total ? ` of ${bytes(total)}` : ""}`;
    }
    const url = URL.createObjectURL(new Blob(chunks, { type: "application/octet-stream" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = `hearth-backup-${new Date().toISOString().replace(/[:.]/g, "-")}.redb`;
    link.textContent = "save again";
    link.id = "backup-link";
    document.body.append(link);
    link.click();
    $("backup-status").replaceChildren(`Done: ${bytes(got)}. `, link);
  } catch (e) {
    $("backup-error").textContent = e.message;
    $("backup-status").textContent = "";
  } finally {
    $("backup").disabled = false;
  }
};

if (token) start();
else signOut("");
