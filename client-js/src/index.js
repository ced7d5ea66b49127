// hearth-client: the JavaScript client for Hearth. Browsers and Node >= 20.
//
// One socket, promises matched to replies by id, automatic reconnect with backoff and
// jitter, re-authentication, and watches that resume from the last version they delivered
// (the server replays what was missed), so an app sees no gap and no duplicate.

import { HearthError } from "./errors.js";
import { Outbox } from "./outbox.js";
import { PresenceHandle } from "./presence.js";
import { resolveOutboxStore } from "./stores.js";

export { HearthError };
export { memoryStore, indexedDbStore, fileStore } from "./stores.js";

const DEFAULTS = {
  requestTimeout: 10_000,
  reconnect: { min: 250, max: 10_000, factor: 2 },
  persist: false,
  storageKey: "hearth.token",
  transactRetries: 20,
  // Renew the token this long before it expires (`refresh`), so a long-lived app stays
  // signed in; false turns it off.
  refreshBefore: 0.2,
};

/** Connects to a Hearth server: `connect("ws://127.0.0.1:8080/ws", { token })`. */
export function connect(url, options = {}) {
  return new Hearth(url, options);
}

export class Hearth {
  constructor(url, options = {}) {
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this.WebSocket) {
      throw new TypeError("no WebSocket: pass { WebSocket } (e.g. the `ws` package) in Node < 22");
    }
    this.storage = resolveStorage(this.options.persist);
    this.token = options.token ?? this.storage?.getItem(this.options.storageKey) ?? null;
    this.username = null;
    this.connected = false; // socket open
    this.ready = false; // socket open and, if we hold a token, signed in again
    this._listeners = new Map();
    this._pending = new Map(); // id -> { resolve, reject, timer }
    this._watches = new Map(); // target key -> watch record
    this._presences = new Set(); // PresenceHandle
    this._nextId = 1;
    this._attempt = 0;
    this._closed = false;
    this._ready = null; // resolves when connected (and re-authenticated)
    this._readyResolve = null; // null once resolved: the next disconnect makes a new promise
    this._refreshTimer = null;
    this._resetReady();
    const store = resolveOutboxStore(this.options.outbox);
    this._outbox = store ? new Outbox(this, store) : null;
    if (this._outbox && this.token) {
      // Offline at start: the stored token says whose writes and documents to show.
      this.username = tokenClaims(this.token)?.sub ?? null;
      this._outbox.load(this.username);
    }
    this._followNetwork();
    this._open();
  }

  /** In browsers: a socket is closed as soon as the system says it is offline (instead of
   * waiting for it to time out), and reopened at once when it is back. */
  _followNetwork() {
    const w = globalThis.window;
    if (!w?.addEventListener) return;
    w.addEventListener("offline", () => {
      if (this.ws && this.ws.readyState <= 1) this.ws.close(4000, "offline");
    });
    w.addEventListener("online", () => {
      if (this._closed || this.connected) return;
      clearTimeout(this._retryTimer);
      this._attempt = 0;
      if (!this.ws || this.ws.readyState >= 2) this._open();
    });
  }

  // ---- presence ----------------------------------------------------------------------

  /**
   * Presence on a document (`target`: a username or "owner/name"; yours when left out):
   * announces this client with `state` (null: only listen) and keeps `handle.list` of who is
   * present current, calling `handle.on("change", list => …)`. Watches the document if the
   * app does not. Announced again after every reconnect; `handle.leave()` ends it.
   */
  presence(target, state = {}) {
    const handle = new PresenceHandle(this, this._key(target ?? undefined), state);
    this._presences.add(handle);
    return handle;
  }

  /** Whether a watch of document `key` is registered (the app's or a presence handle's). */
  _watching(key) {
    return this._watches.has(key) || (key === this.username && this._watches.has(""));
  }

  /** Resolves once the watch of `key` is established on the current connection. */
  _watchReady(key) {
    const record = this._watches.get(key) ?? (key === this.username ? this._watches.get("") : undefined);
    return record?.started ?? Promise.resolve();
  }

  // ---- the outbox --------------------------------------------------------------------

  /** Writes waiting to be sent: `{ count, ops: [{ opId, kind, target, at }] }`. */
  get pending() {
    const ops = (this._outbox?.ops ?? []).map(({ opId, kind, target, at }) => ({ opId, kind, target, at }));
    return { count: ops.length, ops };
  }

  /** The document key a target names: its owner for a default document, else owner/name. */
  _key(target) {
    // Before the first sign-in answers, the token says whose it is.
    const key = target ?? this.username ?? (this.token ? tokenClaims(this.token)?.sub : null);
    if (!key) throw new HearthError("auth_required", "sign in first");
    return key;
  }

  /** Queues `op(key)` in the outbox; a target that cannot be named rejects, never throws. */
  _queue(target, op, fn) {
    let key;
    try {
      key = this._key(target ?? undefined);
    } catch (e) {
      return Promise.reject(e);
    }
    return this._outbox.add(op(key), fn);
  }

  /** A fetch from the server, kept as the document's last known version. */
  async _serverFetch(target) {
    const reply = await this._request({ type: "fetch", target });
    const doc = omitUndefined({ username: reply.username, name: reply.name, version: reply.version, data: reply.data });
    this._outbox?.remember(target, doc);
    return doc;
  }

  /** Shows the queued writes of `target` to its watchers at once. With `settled`, only to
   * watchers last shown writes still pending (one was just committed or given up), so that
   * what they show ends up as the server has it. */
  _deliverLocal(target, settled = false) {
    const view = this._outbox?.view(target);
    if (!view) return;
    for (const record of this._watches.values()) {
      if (record.active && !record.fields && !record.mode && this._key(record.target) === target) {
        if (settled && !record.shownPending) continue;
        record.shownPending = view.pending;
        deliver(record, { ...view, local: true, offline: !this.ready });
      }
    }
  }

  /** A change for `record` as the app should see it: with the queued writes on top. */
  _withPending(record, change) {
    if (!this._outbox || record.fields || record.mode) return change;
    const target = this._key(record.target);
    if (change.data) this._outbox.remember(target, change);
    else this._outbox.follow(target, change);
    const view = this._outbox.pendingFor(target) ? this._outbox.view(target) : null;
    record.shownPending = view !== null;
    return view ? { ...change, data: view.data, pending: true } : change;
  }

  // ---- events ------------------------------------------------------------------------

  /** Listens for `connected`, `disconnected`, `auth` ({username, token} or null), `error`,
   * and `shared` / `unshared` ({owner, name?, role?}: a document was shared with you, or no
   * longer is; the server sends these once the socket has listed, which this does for you). */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    if ((event === "shared" || event === "unshared") && this.ready && this.token) {
      this._hearShares();
    }
    return () => this.off(event, fn);
  }

  /** Asks the server for `shared` / `unshared` pushes on this socket (a `list` does). */
  _hearShares() {
    this._request({ type: "list", limit: 1 }).catch(() => {});
  }

  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
  }

  _emit(event, value) {
    for (const fn of this._listeners.get(event) ?? []) {
      try {
        fn(value);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  // ---- accounts ----------------------------------------------------------------------

  /** Signs up: with no arguments under a generated name, else with username and password. */
  async signup(username, password) {
    const frame = username === undefined ? { type: "signup" } : { type: "signup", username, password };
    return this._signedIn(await this._request(frame, { early: true }));
  }

  async login(username, password) {
    return this._signedIn(await this._request({ type: "login", username, password }, { early: true }));
  }

  /** Signs in with a token from an earlier signup or login. */
  async auth(token) {
    return this._signedIn(await this._request({ type: "auth", token }, { early: true }));
  }

  /** Revokes this session's token everywhere and forgets it. */
  async logout() {
    await this._request({ type: "logout" });
    this._forget();
  }

  /** A new token for this session, valid for the server's TOKEN_TTL from now. The client
   * does this by itself before the token expires (`refreshBefore`). */
  async refresh() {
    return this._signedIn(await this._request({ type: "refresh" }));
  }

  /** Changes this account's password (`old` may be left out by an account without one);
   * every other session of the account ends. Resolves to how many ended. */
  async changePassword(oldPassword, newPassword) {
    const reply = await this._request(omitUndefined({ type: "password", old: oldPassword ?? undefined, new: newPassword }));
    return reply.ended;
  }

  /** Deletes this account and everything it owns (the password is needed when it has one).
   * Resolves to `{ sessions, blobs, unshared }`; the client is signed out. */
  async deleteAccount(password) {
    const body = JSON.stringify(password === undefined ? {} : { password });
    const res = await this._http("DELETE", "/v1/me", body, { "Content-Type": "application/json" });
    const report = await res.json();
    this._forget();
    return report;
  }

  /** Everything this account holds, as the server's export: `{ document, changes, blobs, … }`. */
  async exportData() {
    return (await this._http("GET", "/v1/me/export")).json();
  }

  _signedIn(reply) {
    this.token = reply.token;
    this.username = reply.username;
    this.storage?.setItem(this.options.storageKey, reply.token);
    this._outbox?.load(reply.username);
    this._scheduleRefresh();
    const auth = { username: reply.username, token: reply.token };
    this._emit("auth", auth);
    if (this._listeners.get("shared")?.size || this._listeners.get("unshared")?.size) {
      this._hearShares();
    }
    return auth;
  }

  /** Renews the token when `refreshBefore` of its lifetime is left. */
  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    const claims = tokenClaims(this.token);
    if (!claims?.exp || !claims.iat || this.options.refreshBefore === false) return;
    const lifetime = (claims.exp - claims.iat) * 1000;
    const at = claims.exp * 1000 - lifetime * this.options.refreshBefore;
    const wait = Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1));
    this._refreshTimer = setTimeout(() => {
      if (!this.ready || this._closed) return; // a reconnect signs in and schedules again
      this.refresh().catch((e) => this._emit("error", e));
    }, wait);
    this._refreshTimer.unref?.();
  }

  _forget() {
    clearTimeout(this._refreshTimer);
    this.token = null;
    this.username = null;
    this.storage?.removeItem(this.options.storageKey);
    for (const w of this._watches.values()) w.active = false;
    this._watches.clear();
    this._outbox?.load(null);
    this._emit("auth", null);
  }

  // ---- data --------------------------------------------------------------------------

  /** The document (or some `fields` of it): `{ username, name?, version, data: {metadata, userdata} }`.
   * `target`: a username (that user's default document) or `"owner/name"`. */
  async fetch(target, fields) {
    if (Array.isArray(target)) [target, fields] = [undefined, target];
    if (this._outbox && !fields) {
      await this._outbox.loaded;
      const key = this._key(target);
      if (!this.ready) {
        const view = this._outbox.view(key);
        if (view) return { ...view, offline: true };
        throw new HearthError("disconnected", `offline, and ${key} was never fetched or watched here`);
      }
      const doc = await this._serverFetch(key);
      return this._outbox.pendingFor(key) ? this._outbox.view(key) : doc;
    }
    const reply = await this._request(omitUndefined({ type: "fetch", target, fields }));
    return omitUndefined({ username: reply.username, name: reply.name, version: reply.version, data: reply.data });
  }

  // ---- named documents ---------------------------------------------------------------

  /**
   * A handle on a named document: `doc("groceries")` (yours) or `doc("bob/groceries")`.
   * Its methods are the client's, with the target filled in.
   */
  doc(name) {
    const target = () => (name.includes("/") ? name : `${this.username}/${name}`);
    return {
      get target() {
        return target();
      },
      fetch: (fields) => this.fetch(target(), fields),
      update: (data, version, patch = false) => this.update(target(), data, version, patch),
      transact: (fn) => this.transact(target(), fn),
      share: (access, version) => this.share(target(), access, version),
      watch: (options, onChange) => this.watch(target(), options ?? {}, onChange),
      delete: () => this.deleteDoc(target()),
    };
  }

  /** Creates a named document of yours: `create("groceries", { userdata, collaborators,
   * readers })`. Resolves to `{ username, name, version: 0, data }`; rejects with
   * `already_exists` or `too_many_documents`. */
  async create(name, { userdata, collaborators, readers } = {}) {
    const reply = await this._request(omitUndefined({ type: "create", name, userdata, collaborators, readers }));
    return { username: reply.username, name: reply.name, version: reply.version, data: reply.data };
  }

  /** Deletes a named document of yours (`"groceries"` or `"me/groceries"`). */
  async deleteDoc(name) {
    const frame = name.includes("/") ? { type: "delete", target: name } : { type: "delete", name };
    await this._request(frame);
  }

  /** Your named documents and those shared with you: `{ documents, shared, next?, sharedNext? }`
   * (pass `next` as `after`, `sharedNext` as `sharedAfter` for more). */
  async list({ after, sharedAfter, limit } = {}) {
    const reply = await this._request(omitUndefined({ type: "list", after, sharedAfter, limit }));
    return omitUndefined({ documents: reply.documents, shared: reply.shared, next: reply.next, sharedNext: reply.sharedNext });
  }

  // ---- streams -------------------------------------------------------------------------

  /**
   * Appends `event` (any JSON value) to a stream: `append("activity", {did: "milk"})` (yours;
   * your first append creates it) or `append("ann/activity", …)`. Resolves to `{ seq, id }`.
   * `opId` makes a retry safe: an append that committed is answered, not made again.
   */
  async append(stream, event, { opId } = {}) {
    const reply = await this._request(omitUndefined({ type: "append", target: this._stream(stream), event, opId }));
    return { seq: reply.seq, id: reply.eventId };
  }

  /**
   * A stream's events after `from` (a sequence number or an event id; none: from the first)
   * up to `to`: `{ events: [{seq, id, at, by, event}], seq, oldest?, next? }` (`next`: pass it
   * as `from` for the following page).
   */
  async read(stream, { from, to, limit } = {}) {
    const reply = await this._request(omitUndefined({ type: "read", target: this._stream(stream), from, to, limit }));
    return omitUndefined({ events: reply.events, seq: reply.seq, oldest: reply.oldest ?? undefined, next: reply.next ?? undefined });
  }

  /**
   * Follows a stream: `onEvent({seq, id, at, by, event})` for each event after `from` (0: from
   * the first; none: only new ones), in order, each once, across reconnects.
   */
  follow(stream, onEvent, { from } = {}) {
    const target = this._stream(stream);
    const handler = (change) => {
      const appended = change.op?.append;
      if (appended) onEvent({ seq: change.version, id: appended.id, at: change.at, by: change.by, event: appended.event });
    };
    if (!from) return this.watch(target, { mode: "ops", ...(from === 0 ? { since: 0 } : {}) }, handler);
    // From a place in the stream: in the stream's present life (one deleted and made again
    // starts over), so its incarnation is read first.
    let unwatch = null;
    let stopped = false;
    const ready = this.fetch(target).then((doc) => {
      if (stopped) return;
      const incarnation = doc.data.metadata.incarnation;
      unwatch = this.watch(target, { mode: "ops", since: from, incarnation }, handler);
      return unwatch.ready;
    });
    const stop = () => {
      stopped = true;
      unwatch?.();
    };
    stop.ready = ready;
    return stop;
  }

  /** A stream's document key: `"activity"` → `"me/~activity"`, `"ann/activity"` → `"ann/~activity"`. */
  _stream(stream) {
    const [owner, name] = stream.includes("/") ? stream.split("/", 2) : [this.username, stream];
    return `${owner}/~${name.replace(/^~/, "")}`;
  }

  /**
   * Updates `userdata` at `version`. `patch`: false (replace), true or "merge" (RFC 7386),
   * "json-patch" (RFC 6902, `data` is then an array). Resolves to the new version; rejects
   * with code `version_mismatch` (and `.version`, the current one) when stale.
   */
  update(target, data, version, patch = false) {
    if (typeof target !== "string" && target !== undefined && target !== null) {
      [target, data, version, patch] = [undefined, target, data, version ?? false];
    }
    if (this._outbox) {
      return this._queue(target, (key) => ({ kind: "update", target: key, data, patch, base: version }));
    }
    const frame = omitUndefined({
      type: "update",
      target: target ?? undefined,
      data: { metadata: { version }, userdata: data },
      patch,
    });
    return this._request(frame).then((r) => r.version);
  }

  /** Sets who may write (`collaborators`) and read (`readers`) the document; owner only. */
  share(target, access, version) {
    if (typeof target !== "string") [target, access, version] = [undefined, target, access];
    if (this._outbox) {
      const lists = omitUndefined({ collaborators: access.collaborators, readers: access.readers });
      return this._queue(target, (key) => ({ kind: "share", target: key, lists, base: version }));
    }
    const metadata = omitUndefined({ version, collaborators: access.collaborators, readers: access.readers });
    return this._request(omitUndefined({ type: "update", target, data: { metadata } })).then((r) => r.version);
  }

  // ---- blobs (HTTP, next to the WebSocket) -------------------------------------------

  /** The server's HTTP base, from the WebSocket URL (`ws://h/ws` → `http://h`). */
  get httpBase() {
    const u = new URL(this.url);
    u.protocol = u.protocol === "wss:" ? "https:" : "http:";
    u.pathname = u.pathname.replace(/\/ws\/?$/, "");
    u.search = "";
    return u.toString().replace(/\/$/, "");
  }

  async _http(method, path, body, headers = {}) {
    if (!this.token) throw new HearthError("auth_required", "authentication required");
    const res = await fetch(this.httpBase + path, {
      method,
      body,
      headers: { Authorization: `Bearer ${this.token}`, ...headers },
    });
    if (!res.ok) {
      const err = await res.json().catch(() => ({ code: "internal", message: res.statusText }));
      throw toError(err);
    }
    return res;
  }

  /**
   * Uploads `data` (Blob, ArrayBuffer, typed array or string) as a content-addressed blob:
   * resolves to `{ sha256, size, contentType }`. Put `blob:<sha256>` in your document to
   * share it with the document's readers.
   */
  async putBlob(data, contentType = data?.type || "application/octet-stream") {
    const res = await this._http("PUT", "/v1/blobs", data, { "Content-Type": contentType });
    return res.json();
  }

  /**
   * Downloads a blob as a `Blob`. `doc`: the owner of a document you may read that mentions
   * it (needed for blobs you did not upload yourself).
   */
  async getBlob(sha256, { doc } = {}) {
    const q = doc ? `?doc=${encodeURIComponent(doc)}` : "";
    return (await this._http("GET", `/v1/blobs/${sha256}${q}`)).blob();
  }

  /** Drops your reference to a blob; the bytes go with the last reference. */
  async deleteBlob(sha256) {
    await this._http("DELETE", `/v1/blobs/${sha256}`);
  }

  /**
   * Read, apply `fn(userdata)`, write back at that version; on `version_mismatch` re-read and
   * try again (up to `transactRetries`). `fn` must be pure: it may run more than once.
   * Resolves to `{ version, userdata }`.
   */
  transact(target, fn) {
    if (typeof target === "function") [target, fn] = [undefined, target];
    if (!this._outbox) return this._transactOnline(target, fn);
    // Run now on what the app shows (the last known version and the writes queued on it);
    // run again on the newest version if someone else's came first.
    return this._queue(target, (key) => async () => {
      const view = this._outbox.view(key) ?? (await this._serverFetch(key));
      const next = await fn(structuredClone(view.data.userdata));
      return { kind: "transact", target: key, data: next, base: view.version };
    }, fn);
  }

  async _transactOnline(target, fn) {
    for (let attempt = 0; attempt <= this.options.transactRetries; attempt++) {
      try {
        const { version, data } = await this.fetch(target);
        const next = await fn(structuredClone(data.userdata));
        const v = await this.update(target, next, version, false);
        return { version: v, userdata: next };
      } catch (e) {
        // Told to slow down (the fetch or the write): wait as long as the server says.
        if (e.code === "rate_limited") {
          await sleep((e.retryAfter ?? 1) * 1000);
          continue;
        }
        if (e.code !== "version_mismatch") throw e;
        await sleep(Math.random() * 5 * (attempt + 1));
      }
    }
    throw new HearthError("conflict", `transact gave up after ${this.options.transactRetries + 1} attempts`);
  }

  /**
   * Watches a document: `onChange` gets the current state at once, then every change, in
   * version order: `{ username, version, data?, op?, at?, by?, resync?, snapshot? }`.
   * Survives reconnects without gaps or duplicates. Returns a function that stops watching;
   * it also has `.ready`, a promise of the first reply (rejecting if the watch is refused).
   */
  watch(target, options, onChange) {
    if (typeof target === "function") [target, options, onChange] = [undefined, {}, target];
    else if (typeof target === "object" && target !== null) [target, options, onChange] = [undefined, target, options];
    if (typeof options === "function") [options, onChange] = [{}, options];
    options ??= {};
    const key = target ?? "";
    this._watches.get(key)?.stop(false);
    const record = {
      key,
      target,
      fields: options.fields,
      mode: options.mode,
      last: options.since ?? null,
      incarnation: options.incarnation ?? null,
      onChange,
      onError: options.onError,
      active: true,
      stop: null,
    };
    const stop = (tellServer = true) => {
      if (!record.active) return;
      record.active = false;
      if (this._watches.get(key) === record) this._watches.delete(key);
      if (tellServer && this.ready) this._request(omitUndefined({ type: "unwatch", target })).catch(() => {});
    };
    record.stop = stop;
    this._watches.set(key, record);
    const unwatch = () => stop(true);
    if (this._outbox && !record.fields && !record.mode && record.last === null) {
      // Opened offline: the last known version (and queued writes) at once; the watch then
      // resumes from it when connected.
      this._outbox.loaded.then(() => {
        const view = !this.ready && record.active && record.last === null ? this._outbox.view(this._key(target)) : null;
        if (!view) return;
        record.last = view.version;
        record.incarnation = view.data.metadata.incarnation ?? null;
        deliver(record, { ...view, snapshot: true, offline: true });
      });
    }
    unwatch.ready = this._startWatch(record);
    unwatch.ready.catch(() => {});
    return unwatch;
  }

  _startWatch(record) {
    record.started = this._startWatchNow(record);
    return record.started;
  }

  async _startWatchNow(record) {
    const frame = omitUndefined({
      type: "watch",
      target: record.target,
      fields: record.fields,
      mode: record.mode,
      since: record.last ?? undefined,
      incarnation: record.last !== null ? record.incarnation ?? undefined : undefined,
    });
    try {
      const reply = await this._request(frame);
      if (!record.active) return reply;
      if (reply.type === "data") {
        record.last = reply.version;
        record.incarnation = reply.data?.metadata?.incarnation ?? null;
        const change = omitUndefined({ username: reply.username, name: reply.name, version: reply.version, data: reply.data, snapshot: true, resync: reply.resync === true });
        deliver(record, this._withPending(record, change));
      }
      return reply;
    } catch (e) {
      // Offline: the watch stays registered and is sent again once connected.
      if (e.code === "disconnected" || (e.code === "timeout" && !this.ready)) return undefined;
      record.active = false;
      this._watches.delete(record.key);
      record.onError?.(e);
      throw e;
    }
  }

  /** Closes the connection for good; pending requests reject with `closed`. */
  close() {
    this._closed = true;
    clearTimeout(this._retryTimer);
    clearTimeout(this._refreshTimer);
    this._failPending(new HearthError("closed", "client closed"));
    this.ws?.close(1000);
  }

  // ---- transport ---------------------------------------------------------------------

  // One promise for the whole time the client is not ready: failed reconnect attempts keep
  // it, so a request waiting on it is answered by whichever attempt succeeds.
  _resetReady() {
    if (this._ready && this._readyResolve) return; // still waiting: keep the same promise
    this._ready = new Promise((resolve) => (this._readyResolve = resolve));
  }

  _markReady() {
    this._readyResolve?.();
    this._readyResolve = null;
  }

  _open() {
    if (this._closed) return;
    // A browser that knows it is offline: no attempt until its "online" event.
    if (globalThis.window?.addEventListener && globalThis.navigator?.onLine === false) return;
    const ws = new this.WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (e) => this._onMessage(typeof e.data === "string" ? e.data : String(e.data));
    ws.onclose = () => this._onClose(ws);
    ws.onerror = () => {}; // onclose follows and does the work
  }

  async _onOpen(ws) {
    if (ws !== this.ws) return;
    this._attempt = 0;
    this.connected = true;
    if (this.token) {
      try {
        await this._send({ type: "auth", token: this.token }).then((r) => this._signedIn(r));
      } catch (e) {
        if (e.code === "invalid_token") {
          this._forget();
          this._emit("error", e);
        } else if (e.code === "disconnected") {
          return;
        }
      }
    }
    this.ready = true;
    this._emit("connected");
    this._markReady();
    const started = [...this._watches.values()].map((record) => this._startWatch(record).catch(() => {}));
    // Presence is announced again once the watches it needs are back.
    Promise.all(started).then(() => {
      for (const p of this._presences) if (p.active) p._announce().catch(() => {});
    });
    this._outbox?.flush();
  }

  _onClose(ws) {
    if (ws !== this.ws) return;
    const was = this.connected;
    this.connected = false;
    this.ready = false;
    this._resetReady();
    this._failPending(new HearthError("disconnected", "connection lost"));
    if (was) this._emit("disconnected");
    if (this._closed || this.options.reconnect === false) return;
    const { min, max, factor } = this.options.reconnect;
    const base = Math.min(max, min * factor ** this._attempt++);
    const delay = base / 2 + Math.random() * (base / 2);
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  _failPending(error) {
    for (const p of this._pending.values()) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this._pending.clear();
  }

  _onMessage(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.id !== undefined && this._pending.has(frame.id)) {
      const p = this._pending.get(frame.id);
      this._pending.delete(frame.id);
      clearTimeout(p.timer);
      if (frame.type === "error") p.reject(toError(frame));
      else p.resolve(frame);
      return;
    }
    if (frame.type === "change") return this._onChange(frame);
    if (frame.type === "presence" && frame.event) {
      const key = frame.name === undefined ? frame.username : `${frame.username}/${frame.name}`;
      for (const p of this._presences) if (p.target === key) p._pushed(frame);
      return;
    }
    if (frame.type === "error") return this._onPushedError(frame);
    if (frame.type === "shared" || frame.type === "unshared") {
      const { type, ...event } = frame;
      this._emit(type, event);
    }
  }

  _onChange(frame) {
    const key = frame.name === undefined ? frame.username : `${frame.username}/${frame.name}`;
    const record = this._watches.get(key === this.username ? "" : key) ?? this._watches.get(key);
    if (!record?.active) return;
    if (record.last !== null && frame.version <= record.last) return; // already delivered
    record.last = frame.version;
    if (frame.resync && frame.data?.metadata) record.incarnation = frame.data.metadata.incarnation ?? null;
    const change = omitUndefined({ username: frame.username, name: frame.name, version: frame.version });
    for (const k of ["data", "op", "at", "by"]) if (frame[k] !== undefined) change[k] = frame[k];
    if (frame.resync) change.resync = true;
    deliver(record, this._withPending(record, change));
  }

  _onPushedError(frame) {
    const error = toError(frame);
    if (frame.code === "invalid_token") this._forget();
    if (frame.target !== undefined) {
      for (const record of [...this._watches.values()]) {
        if (record.target === frame.target || (!record.target && frame.target === this.username)) {
          record.active = false;
          this._watches.delete(record.key);
          record.onError?.(error);
        }
      }
    }
    this._emit("error", error);
  }

  /** Sends a frame on the current socket and waits for its reply. */
  _send(frame) {
    return new Promise((resolve, reject) => {
      if (!this.connected) return reject(new HearthError("disconnected", "not connected"));
      if (this.ws.readyState !== 1) return reject(new HearthError("disconnected", "socket not open"));
      const id = this._nextId++;
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new HearthError("timeout", `no reply to ${frame.type} within ${this.options.requestTimeout} ms`));
      }, this.options.requestTimeout);
      this._pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  /** Waits for a connection (within the request timeout), then sends. `early` requests
   * (sign-in) do not wait for re-authentication. */
  async _request(frame, { early = false } = {}) {
    if (this._closed) throw new HearthError("closed", "client closed");
    if (!(early ? this.connected : this.ready)) {
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new HearthError("timeout", `not connected within ${this.options.requestTimeout} ms`)),
          this.options.requestTimeout,
        );
      });
      try {
        await Promise.race([this._ready, timeout]);
      } finally {
        clearTimeout(timer);
      }
    }
    return this._send(frame);
  }
}

function deliver(record, change) {
  try {
    record.onChange?.(change);
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}

function toError(frame) {
  return new HearthError(frame.code, frame.message, frame);
}

function omitUndefined(obj) {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function resolveStorage(persist) {
  if (!persist) return null;
  if (persist === true) {
    if (globalThis.localStorage) return globalThis.localStorage;
    throw new TypeError(
      "persist: true keeps the token in localStorage, which this runtime lacks; in Node pass persist: \"path/to/file.json\" or an object with getItem/setItem/removeItem",
    );
  }
  if (typeof persist === "string") return fileStorage(persist);
  return persist; // anything with getItem/setItem/removeItem
}

/** A Storage kept in a JSON file (mode 0600): `persist: "path"` in Node. */
function fileStorage(path) {
  const fs = globalThis.process?.getBuiltinModule?.("node:fs");
  if (!fs) throw new TypeError("persist: a file path works in Node (>= 20.16) only");
  const read = () => {
    try {
      return JSON.parse(fs.readFileSync(path, "utf8"));
    } catch {
      return {};
    }
  };
  const write = (data) => fs.writeFileSync(path, JSON.stringify(data), { mode: 0o600 });
  return {
    getItem: (k) => read()[k] ?? null,
    setItem: (k, v) => write({ ...read(), [k]: String(v) }),
    removeItem: (k) => {
      const data = read();
      delete data[k];
      write(data);
    },
  };
}

/** A JWT's payload (`exp`, `iat`, `sub`, …), or null. Not verified: only for timing. */
function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}
