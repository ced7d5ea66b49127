// Operations and the audit log: a backup taken now and downloaded, the snapshots the server
// keeps (scheduled and manual), the settings in force, the node's recent warnings and
// errors; and every admin action, newest first.

import { $, api, bytes, download, el, when } from "./common.js";

export async function loadOperations() {
  $("backup-error").textContent = "";
  await Promise.all([loadBackups(), loadLogs(), loadSettings()]).catch((e) => ($("backup-error").textContent = e.message));
}

async function loadSettings() {
  const { settings } = await api("GET", "/v1/admin/settings");
  $("settings-rows").replaceChildren(
    ...Object.entries(settings).map(([name, value]) =>
      el("tr", {}, el("td", {}, name), el("td", {}, value === null ? "—" : Array.isArray(value) ? value.join(", ") || "—" : String(value))),
    ),
  );
}

async function loadBackups() {
  const b = await api("GET", "/v1/admin/backups");
  $("schedule").textContent = b.interval
    ? `Every ${duration(b.interval)} into ${b.dir}, the newest ${b.keep} kept.`
    : `None scheduled (set BACKUP_INTERVAL). Snapshots taken here go to ${b.dir}.`;
  $("backup-rows").replaceChildren(
    ...(b.backups.length
      ? b.backups.map((f) =>
          el(
            "tr",
            {},
            el("td", {}, el("code", {}, f.name)),
            el("td", {}, f.scheduled ? "scheduled" : "manual"),
            el("td", {}, bytes(f.bytes)),
            el("td", {}, when(f.modified)),
            el("td", {}, el("button", { className: "ghost", dataset: { name: f.name }, onclick: () => fetchBackup(`/v1/admin/backups/${encodeURIComponent(f.name)}`, f.name) }, "Download")),
          ),
        )
      : [el("tr", {}, el("td", { colSpan: 5, className: "muted" }, "No snapshots kept yet."))]),
  );
}

function duration(secs) {
  if (secs % 86400 === 0) return `${secs / 86400} day(s)`;
  if (secs % 3600 === 0) return `${secs / 3600} hour(s)`;
  if (secs % 60 === 0) return `${secs / 60} minute(s)`;
  return `${secs} s`;
}

async function loadLogs() {
  const { lines } = await api("GET", "/v1/admin/logs");
  $("log-lines").replaceChildren(
    ...(lines.length
      ? lines.map((l) =>
          el("tr", { className: l.level }, el("td", {}, when(l.at)), el("td", {}, el("span", { className: `tag ${l.level === "error" ? "off" : ""}` }, l.level)), el("td", { className: "mono" }, l.message), el("td", { className: "muted small" }, l.target)),
        )
      : [el("tr", {}, el("td", { colSpan: 4, className: "muted" }, "No warnings or errors since this node started."))]),
  );
}

/** Downloads a snapshot with its progress shown, then lists the kept ones again. */
async function fetchBackup(url, name) {
  $("backup-error").textContent = "";
  $("backup").disabled = true;
  $("backup-status").textContent = url.endsWith("/backup") ? "taking a snapshot…" : `downloading ${name}…`;
  try {
    await download(url, name, $("backup-progress"), $("backup-status"));
  } catch (e) {
    $("backup-error").textContent = e.message;
    $("backup-status").textContent = "";
  } finally {
    $("backup").disabled = false;
  }
}

$("backup").onclick = () => fetchBackup("/v1/admin/backup", `hearth-backup-${new Date().toISOString().replace(/[:.]/g, "-")}.redb`);
$("logs-refresh").onclick = () => loadLogs().catch((e) => ($("backup-error").textContent = e.message));

// ---- audit log -----------------------------------------------------------------------

const ACTIONS = {
  disable: "disabled",
  enable: "enabled",
  delete_user: "deleted",
  create_user: "created",
  reset_password: "reset the password of",
  grant_admin: "made admin",
  revoke_admin: "withdrew admin from",
  end_sessions: "ended the sessions of",
  backup: "took a backup",
  backup_download: "downloaded a backup",
  import: "imported personal-backend users",
  read_document: "read",
  read_changes: "read the change log of",
  watch_document: "watched",
  edit_document: "edited",
  create_webhook: "created the global webhook",
  remove_webhook: "removed the webhook",
  resume_webhook: "resumed the webhook",
};

/** The newest page (`append` false) or the next older one. */
export async function loadAudit(append = false) {
  $("audit-error").textContent = "";
  try {
    const before = append ? $("older").dataset.next : "";
    const page = await api("GET", `/v1/admin/audit?limit=50${before ? `&before=${before}` : ""}`);
    const rows = page.lines.map((l) =>
      el("tr", { dataset: { action: l.action } }, el("td", {}, when(l.at)), el("td", {}, l.by), el("td", {}, ACTIONS[l.action] ?? l.action), el("td", {}, l.target ?? "")),
    );
    if (append) $("audit-rows").append(...rows);
    else $("audit-rows").replaceChildren(...rows);
    $("older").hidden = page.next == null;
    $("older").dataset.next = page.next ?? "";
  } catch (e) {
    $("audit-error").textContent = e.message;
  }
}
$("older").onclick = () => loadAudit(true);
