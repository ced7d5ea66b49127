// The demo page: everything goes through hearth-client, as an app would.
import { connect } from "/hearth-client.js";

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const hearth = connect(wsUrl, { persist: true });

let doc = null; // the latest change of my own document: { version, data }
let dirty = false; // the editor holds text the user has not saved
let stopOwn = null;
let stopOther = null;

const EXAMPLES = {
  merge: '{\n  "groceries": { "milk": 2, "bread": null }\n}',
  "json-patch": '[\n  { "op": "add", "path": "/todo", "value": ["water the plants"] }\n]',
};

// ---- connection and session -----------------------------------------------------------

hearth.on("connected", () => setStatus(true));
hearth.on("disconnected", () => setStatus(false));
hearth.on("auth", (auth) => (auth ? showApp(auth.username) : showWelcome()));
hearth.on("error", (e) => {
  if (e.code === "invalid_token") showWelcome("Your session ended. Sign in again.");
});
if (!hearth.token) showWelcome();

function setStatus(online) {
  const s = $("status");
  s.textContent = online ? "live" : "offline — reconnecting";
  s.className = `pill ${online ? "online" : "offline"}`;
}

function showWelcome(message = "") {
  stopOwn?.();
  stopOther?.();
  stopOwn = stopOther = null;
  doc = null;
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
  stopOwn?.();
  $("me").dataset.watching = username;
  stopOwn = hearth.watch((change) => {
    doc = { version: change.version, data: change.data };
    renderOwn(change);
  });
}

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
  $("version").textContent = `v${metadata.version}`;
  const when = new Date(metadata.lastUpdate.at).toLocaleString();
  $("last-update").textContent =
    metadata.version === 0 ? `Created ${when}` : `Version ${metadata.version} saved by ${metadata.lastUpdate.by}, ${when}`;
  if (!dirty) {
    $("editor").value = JSON.stringify(userdata, null, 2);
  } else if (!change.snapshot && metadata.lastUpdate.by !== hearth.username) {
    say(`${metadata.lastUpdate.by} saved v${metadata.version}. Save to overwrite it, or discard your edits to see it.`);
  }
  renderChips("collaborators", metadata.collaborators);
  renderChips("readers", metadata.readers);
  renderFiles($("files"), userdata, undefined);
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
    const version = await hearth.update({ files: { [key]: `blob:${sha256}` } }, doc.version, "merge");
    say(`Attached ${file.name} (v${version}).`);
  } catch (e) {
    say(e.code === "version_mismatch" ? "Someone saved first; attach it again." : e.message);
  }
};

function say(text) {
  $("save-status").textContent = text;
}

$("editor").oninput = () => {
  dirty = true;
};
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
$("save").onclick = async () => {
  if (!doc) return;
  let value;
  try {
    value = JSON.parse($("editor").value);
  } catch (e) {
    return say(`Not valid JSON: ${e.message}`);
  }
  const mode = $("mode").value;
  const patch = mode === "false" ? false : mode;
  try {
    const version = await hearth.update(value, doc.version, patch);
    dirty = false;
    $("mode").value = "false";
    say(`Saved as v${version}.`);
    if (doc.version >= version) renderOwn({ ...doc, snapshot: true });
  } catch (e) {
    say(e.code === "version_mismatch" ? `Someone saved v${e.version} first. Save again to overwrite it.` : e.message);
  }
};

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

function setAccess(list, names) {
  return attempt($("share-error"), () => hearth.share({ [list]: names }, doc.version));
}

for (const form of document.querySelectorAll("form.add")) {
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const input = form.querySelector("input");
    const name = input.value.trim();
    const list = form.dataset.list;
    if (!name || !doc) return;
    const current = doc.data.metadata[list];
    setAccess(list, current.includes(name) ? current : [...current, name]).then(() => (input.value = ""));
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
