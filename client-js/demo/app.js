// The demo page: everything goes through hearth-client, as an app would.
import { connect } from "/hearth-client.js";

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
// `outbox: true`: edits made offline are kept in IndexedDB and sent when the page is back
// online; the service worker keeps the page itself, so it opens offline too.
const hearth = connect(wsUrl, { persist: true, outbox: true });
navigator.serviceWorker?.register("/sw.js").catch(() => {});

let doc = null; // the latest change of the open document: { version, data }
// The open document: undefined for my default one, else "owner/name".
let current = undefined;
let dirty = false; // the editor holds text the user has not saved
// What the editor's text was loaded from: a save is a write at this version, so a version
// saved meanwhile (by a collaborator, or by this user in another tab) is never overwritten
// without a word.
let base = null; // { version, userdata }
let stopOwn = null;
let stopOther = null;
let here = null; // my presence on the open document
let typingTimer = null;

const EXAMPLES = {
  merge: '{\n  "groceries": { "milk": 2, "bread": null }\n}',
  "json-patch": '[\n  { "op": "add", "path": "/todo", "value": ["water the plants"] }\n]',
};

// ---- connection and session -----------------------------------------------------------

hearth.on("connected", () => {
  setStatus();
  refreshList();
});
hearth.on("disconnected", setStatus);
// Edits waited offline (made here, or before a reload): their sync is news worth a line.
let waitedOffline = false;
hearth.on("pending", () => {
  waitedOffline ||= !hearth.ready && hearth.pending.count > 0;
  setStatus();
});
hearth.on("synced", ({ sent }) => {
  setStatus();
  if (!waitedOffline) return;
  waitedOffline = false;
  say(`Back online: ${sent === 1 ? "your change is" : `all ${sent} changes are`} synced.`);
});
hearth.on("conflict", (c) => {
  say(
    c.error.code === "conflict"
      ? `An edit made offline met v${c.error.version} by someone else; theirs was kept.`
      : `An edit made offline no longer applies to the newest version: ${c.error.message}`,
  );
});
hearth.on("auth", (auth) => (auth ? showApp(auth.username) : showWelcome()));
// Live "shared with me": the list is the truth, the pushes say when to read it again.
hearth.on("shared", () => refreshList());
hearth.on("unshared", (e) => {
  refreshList();
  if (current === keyOf(e)) open(undefined, `${keyOf(e)} is no longer shared with you.`);
});
hearth.on("error", (e) => {
  if (e.code === "invalid_token") showWelcome("Your session ended. Sign in again.");
});
if (!hearth.token) showWelcome();

function setStatus() {
  const s = $("status");
  const online = hearth.ready;
  const n = hearth.pending.count;
  const changes = `${n} change${n === 1 ? "" : "s"}`;
  s.textContent = online ? (n ? `syncing ${changes}…` : "live") : n ? `offline — ${changes} waiting` : "offline — reconnecting";
  s.className = `pill ${online ? "online" : "offline"}`;
}

function showWelcome(message = "") {
  here?.leave();
  here = null;
  stopOwn?.();
  stopOther?.();
  stopOwn = stopOther = null;
  doc = null;
  current = undefined;
  $("welcome").hidden = false;
  $("app").hidden = true;
  $("who").hidden = $("logout").hidden = true;
  $("welcome-error").textContent = message;
}

function showApp(username) {
  $("welcome").hidden = true;
  $("app").hidden = false;
  $("who").hidden = $("logout").hidden = false;
  $("me").textContent = username;
  if (stopOwn && $("me").dataset.watching === username) return;
  $("me").dataset.watching = username;
  // Offline, the list cannot be read: at least my own document is there.
  if (!$("my-docs").children.length) $("my-docs").replaceChildren(docButton(undefined, "My document", "default"));
  open(undefined);
  refreshList();
}

// ---- documents: mine, named, and shared with me ----------------------------------------

const keyOf = (e) => (e.name === undefined ? e.owner : `${e.owner}/${e.name}`);
const mine = (target) => target === undefined || target.startsWith(`${hearth.username}/`);

/** Opens a document in the editor: watches it, and shows sharing only to its owner. */
function open(target, message = "") {
  stopOwn?.();
  here?.leave();
  here = null;
  current = target;
  doc = base = null;
  dirty = false;
  $("mode").value = "false";
  hideConflict();
  say("");
  $("doc-error").textContent = message;
  $("doc-title").textContent = target === undefined ? "Your document" : target.startsWith(`${hearth.username}/`) ? target.slice(hearth.username.length + 1) : target;
  $("delete-doc").hidden = target === undefined || !mine(target);
  $("share-card").hidden = !mine(target);
  $("share-what").textContent = target === undefined ? "" : `· ${$("doc-title").textContent}`;
  $("editor").value = "";
  const onChange = (change) => {
    doc = { version: change.version, data: change.data };
    renderOwn(change);
  };
  const onError = (e) => open(undefined, e.detail === "deleted" ? `${target} was deleted.` : e.detail === "access revoked" ? `${target} is no longer shared with you.` : e.message);
  stopOwn = target === undefined ? hearth.watch({ onError }, onChange) : hearth.watch(target, { onError }, onChange);
  stopOwn.ready.catch(onError);
  // Who else has it open, and whether they are typing.
  $("present").replaceChildren();
  here = hearth.presence(target, { typing: false });
  here.on("change", renderPresent);
  markCurrent();
}

function markCurrent() {
  for (const b of document.querySelectorAll(".doclist button")) {
    b.setAttribute("aria-current", String(b.dataset.target === (current ?? "")));
  }
}

function docButton(target, label, meta) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.dataset.target = target ?? "";
  const name = document.createElement("span");
  name.textContent = label;
  const m = document.createElement("span");
  m.className = "meta";
  m.textContent = meta;
  b.append(name, m);
  b.onclick = () => open(target);
  li.append(b);
  return li;
}

async function refreshList() {
  if (!hearth.username || !hearth.ready) return;
  try {
    const { documents, shared } = await hearth.list();
    const my = [docButton(undefined, "My document", "default")];
    for (const d of documents) my.push(docButton(`${hearth.username}/${d.name}`, d.name, `v${d.version}`));
    $("my-docs").replaceChildren(...my);
    const theirs = shared.map((s) => docButton(keyOf(s), keyOf(s), s.role === "write" ? "can edit" : "can read"));
    if (theirs.length === 0) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "nothing yet";
      theirs.push(li);
    }
    $("shared-docs").replaceChildren(...theirs);
    markCurrent();
  } catch (e) {
    $("docs-error").textContent = e.message;
  }
}

$("create-form").onsubmit = (ev) => {
  ev.preventDefault();
  const name = $("create-name").value.trim();
  if (!name) return;
  attempt($("docs-error"), async () => {
    await hearth.create(name);
    $("create-name").value = "";
    await refreshList();
    open(`${hearth.username}/${name}`);
  });
};

$("delete-doc").onclick = () => {
  if (current === undefined || !confirm(`Delete ${current}? Everyone it is shared with loses it.`)) return;
  const target = current;
  attempt($("doc-error"), async () => {
    open(undefined, `Deleted ${target}.`);
    await hearth.deleteDoc(target);
    await refreshList();
  });
};

async function attempt(errorEl, fn) {
  errorEl.textContent = "";
  try {
    await fn();
  } catch (e) {
    errorEl.textContent = e.message;
  }
}

$("guest").onclick = () => attempt($("welcome-error"), () => hearth.signup());
$("credentials").onsubmit = (ev) => {
  ev.preventDefault();
  attempt($("welcome-error"), () => hearth.signup($("username").value, $("password").value));
};
$("login").onclick = () => attempt($("welcome-error"), () => hearth.login($("username").value, $("password").value));
$("logout").onclick = () => attempt($("welcome-error"), () => hearth.logout());

// ---- my document ----------------------------------------------------------------------

function renderOwn(change) {
  const { metadata, userdata } = change.data;
  const key = current ?? hearth.username;
  const unsent = hearth.pending.ops.filter((o) => o.target === key).length;
  $("version").textContent = unsent ? `v${metadata.version} + ${unsent} unsent` : `v${metadata.version}`;
  const when = new Date(metadata.lastUpdate.at).toLocaleString();
  $("last-update").textContent =
    metadata.version === 0 ? `Created ${when}` : `Version ${metadata.version} saved by ${metadata.lastUpdate.by}, ${when}`;
  if (!dirty) {
    $("editor").value = JSON.stringify(userdata, null, 2);
    base = { version: metadata.version, userdata };
    hideConflict();
  } else if (!change.snapshot && base && metadata.version > base.version) {
    const who = metadata.lastUpdate.by === hearth.username ? "you, in another tab or device," : metadata.lastUpdate.by;
    showConflict(`v${metadata.version} was saved by ${who} while you were editing v${base.version}.`);
  }
  renderChips("collaborators", metadata.collaborators);
  renderChips("readers", metadata.readers);
  renderFiles($("files"), userdata, current);
  if (current !== undefined && mine(current)) refreshListSoon();
}

/** The list's versions follow my named documents' edits, at most about three times a second. */
let listTimer = null;
function refreshListSoon() {
  if (listTimer) return;
  listTimer = setTimeout(() => {
    listTimer = null;
    refreshList();
  }, 300);
}

// ---- files (blobs) --------------------------------------------------------------------

const blobUrls = new Map(); // sha256 → object URL of the downloaded bytes

/** `[key, sha256]` for every string of the form `blob:<sha256>` in `userdata.files`. */
function fileRefs(userdata) {
  const files = userdata?.files;
  if (!files || typeof files !== "object") return [];
  return Object.entries(files)
    .filter(([, v]) => typeof v === "string" && /^blob:[0-9a-f]{64}$/.test(v))
    .map(([name, v]) => [name, v.slice(5)]);
}

function renderFiles(list, userdata, owner) {
  const refs = fileRefs(userdata);
  list.replaceChildren();
  for (const [name, sha] of refs) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    li.append(label);
    list.append(li);
    showBlob(li, sha, owner, name);
  }
}

async function showBlob(li, sha, owner, name) {
  try {
    let url = blobUrls.get(sha);
    let type = li.dataset.type;
    if (!url) {
      const blob = await hearth.getBlob(sha, { doc: owner });
      url = URL.createObjectURL(blob);
      type = blob.type;
      blobUrls.set(sha, url);
    }
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    if ((type ?? "").startsWith("image/") || /\.(png|jpe?g|gif|webp|svg)$/i.test(name)) {
      const img = document.createElement("img");
      img.src = url;
      img.alt = name;
      link.append(img);
    } else {
      link.textContent = "download";
    }
    li.prepend(link);
  } catch (e) {
    li.title = e.message;
    li.classList.add("missing");
  }
}

$("attach").onchange = async () => {
  const file = $("attach").files[0];
  $("attach").value = "";
  if (!file || !doc) return;
  say(`Uploading ${file.name}…`);
  try {
    const { sha256 } = await hearth.putBlob(file);
    const key = file.name.replace(/[~/]/g, "_");
    const version = await hearth.update(current, { files: { [key]: `blob:${sha256}` } }, doc.version, "merge");
    say(`Attached ${file.name} (v${version}).`);
  } catch (e) {
    say(e.code === "version_mismatch" ? "Someone saved first; attach it again." : e.message);
  }
};

function say(text) {
  $("save-status").textContent = text;
}

// ---- conflicts: a newer version than the one being edited --------------------------------

function showConflict(text) {
  $("conflict-text").textContent = text;
  $("conflict").hidden = false;
}

function hideConflict() {
  $("conflict").hidden = true;
}

/** The RFC 7386 merge patch that turns `from` into `to` (objects; arrays and scalars whole). */
function mergeDiff(from, to) {
  const patch = {};
  for (const key of Object.keys(from)) if (!(key in to)) patch[key] = null;
  for (const [key, value] of Object.entries(to)) {
    const old = from[key];
    if (JSON.stringify(old) === JSON.stringify(value)) continue;
    const bothObjects = [old, value].every((v) => v && typeof v === "object" && !Array.isArray(v));
    patch[key] = bothObjects ? mergeDiff(old, value) : value;
  }
  return patch;
}

/** The edit as it would apply to the newest version: my changes since `base`, as a merge
 * patch, or the patch I typed. Keys only the other side changed keep their value. */
function myChanges() {
  const value = JSON.parse($("editor").value);
  const mode = $("mode").value;
  if (mode === "false") return { value: mergeDiff(base.userdata, value), patch: "merge" };
  return { value, patch: mode };
}

$("conflict-reload").onclick = () => {
  dirty = false;
  $("mode").value = "false";
  if (doc) renderOwn({ ...doc, snapshot: true });
  say("Showing the newest version; your edits were discarded.");
};
$("conflict-merge").onclick = () => save(() => ({ ...myChanges(), version: doc.version }), "Merged your edits into");
$("conflict-overwrite").onclick = () => {
  const value = JSON.parse($("editor").value);
  const mode = $("mode").value;
  save(() => ({ value, patch: mode === "false" ? false : mode, version: doc.version }), "Overwrote with your text as");
};

$("editor").oninput = () => {
  dirty = true;
  // "typing…" for the others while keys come, and for a moment after.
  if (!typingTimer) here?.set({ typing: true }).catch(() => {});
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => {
    typingTimer = null;
    here?.set({ typing: false }).catch(() => {});
  }, 1500);
};

/** A colour per name, so a face is recognisable at a glance. */
function hue(name) {
  let h = 0;
  for (const c of name) h = (h * 131 + c.charCodeAt(0) * 7) % 360;
  return `hsl(${h} 55% 45%)`;
}

function renderPresent(list) {
  const items = list.map((p) => {
    const li = document.createElement("li");
    const me = p.username === hearth.username;
    li.title = `${me ? "you" : p.username}${p.connections > 1 ? ` (${p.connections} windows)` : ""}`;
    const face = document.createElement("span");
    face.className = "face";
    face.style.background = hue(p.username);
    face.textContent = p.username.slice(0, 2).toUpperCase();
    li.append(face);
    if (p.connections > 1) {
      const n = document.createElement("span");
      n.className = "count";
      n.textContent = p.connections;
      li.append(n);
    }
    if (!me && p.state?.typing) {
      const t = document.createElement("span");
      t.className = "typing";
      t.textContent = `${p.username} is typing…`;
      li.append(t);
    }
    return li;
  });
  $("present").replaceChildren(...items);
}
$("mode").onchange = () => {
  const mode = $("mode").value;
  if (mode in EXAMPLES) {
    $("editor").value = EXAMPLES[mode];
    dirty = true;
  } else {
    dirty = false;
    if (doc) renderOwn({ ...doc, snapshot: true });
  }
  say("");
};
$("reload").onclick = () => {
  dirty = false;
  $("mode").value = "false";
  if (doc) renderOwn({ ...doc, snapshot: true });
  say("");
};
$("save").onclick = () => {
  const mode = $("mode").value;
  return save((value) => ({ value, patch: mode === "false" ? false : mode, version: base.version }), "Saved as");
};

/** Writes what `edit(parsedEditor)` says, at its version; a stale one shows the conflict. */
async function save(edit, done) {
  if (!doc || !base) return;
  let write;
  try {
    write = edit(JSON.parse($("editor").value));
  } catch (e) {
    return say(`Not valid JSON: ${e.message}`);
  }
  const written = hearth.update(current, write.value, write.version, write.patch);
  if (!hearth.ready) {
    // Kept on this device and shown at once; sent when the page is back online.
    dirty = false;
    $("mode").value = "false";
    hideConflict();
    say("Saved on this device; it is sent when you are back online.");
    written.catch(() => {}); // a conflict is told by its event; the sync by `synced`
    return;
  }
  try {
    const version = await written;
    dirty = false;
    $("mode").value = "false";
    hideConflict();
    say(`${done} v${version}.`);
    if (doc.version >= version) renderOwn({ ...doc, snapshot: true });
  } catch (e) {
    if (e.code !== "version_mismatch" && e.code !== "conflict") return say(e.message);
    say("");
    showConflict(`v${e.version} was saved after the v${write.version} you were editing; nothing was written.`);
  }
}

// ---- sharing --------------------------------------------------------------------------

function renderChips(list, names) {
  const ul = $(list);
  ul.replaceChildren();
  if (names.length === 0) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "nobody yet";
    ul.append(li);
  }
  for (const name of names) {
    const li = document.createElement("li");
    li.textContent = name;
    const remove = document.createElement("button");
    remove.textContent = "×";
    remove.title = `remove ${name}`;
    remove.onclick = () => setAccess(list, names.filter((n) => n !== name));
    li.append(remove);
    ul.append(li);
  }
}

async function setAccess(list, names) {
  $("share-error").textContent = "";
  try {
    if (current === undefined) await hearth.share({ [list]: names }, doc.version);
    else await hearth.share(current, { [list]: names }, doc.version);
    return true;
  } catch (e) {
    $("share-error").textContent =
      e.code === "unknown_users"
        ? `No account named ${e.users.join(", ")}. Check the spelling; they need to sign up first.`
        : e.message;
    return false;
  }
}

for (const form of document.querySelectorAll("form.add")) {
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const input = form.querySelector("input");
    const name = input.value.trim();
    const list = form.dataset.list;
    if (!name || !doc) return;
    const current = doc.data.metadata[list];
    setAccess(list, current.includes(name) ? current : [...current, name]).then((ok) => {
      if (ok) input.value = "";
    });
  };
}

// ---- watching someone else's document -------------------------------------------------

$("watch-form").onsubmit = (ev) => {
  ev.preventDefault();
  const target = $("watch-target").value.trim();
  if (!target) return;
  stopOther?.();
  $("feed").replaceChildren();
  $("watched-files").replaceChildren();
  $("watch-error").textContent = "";
  const stop = hearth.watch(target, { onError: (e) => ended(e) }, (change) => showWatched(change));
  stopOther = stop;
  stop.ready.catch((e) => ended(e));
};

function ended(e) {
  $("watch-error").textContent =
    e.detail === "access revoked" ? "Access was revoked by the owner." : e.code === "unauthorized" ? "No such document, or it is not shared with you." : e.message;
  $("watched").hidden = $("feed-title").hidden = true;
  $("watched-version").hidden = true;
}

function showWatched(change) {
  const pre = $("watched");
  pre.hidden = $("feed-title").hidden = false;
  pre.textContent = JSON.stringify(change.data.userdata, null, 2);
  renderFiles($("watched-files"), change.data.userdata, change.username);
  const badge = $("watched-version");
  badge.hidden = false;
  badge.textContent = `${change.username} · v${change.version}`;
  pre.classList.remove("flash");
  void pre.offsetWidth; // restart the highlight
  pre.classList.add("flash");
  setTimeout(() => pre.classList.remove("flash"), 700);
  const li = document.createElement("li");
  const v = document.createElement("span");
  v.className = "v";
  v.textContent = `v${change.version}`;
  const text = document.createElement("code");
  text.textContent = change.snapshot ? "snapshot" : `${change.by ?? ""} ${summarize(change)}`;
  li.append(v, text);
  $("feed").prepend(li);
  while ($("feed").children.length > 20) $("feed").lastChild.remove();
}

function summarize(change) {
  if (change.resync) return "resync";
  const op = change.op ?? {};
  const [kind] = Object.keys(op);
  return kind ? `${kind} ${JSON.stringify(op[kind])}` : "";
}

// Opened offline with a stored session: the last known documents and the waiting edits (at
// the end, once everything above is defined).
if (hearth.token && hearth.username && !hearth.ready) showApp(hearth.username);
