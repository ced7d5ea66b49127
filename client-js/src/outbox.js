// The outbox: writes made while disconnected (or before their answer came) are kept in a
// store, shown at once on the last known version of their document, and sent in order once
// connected, each with an operation id so that a resend after a lost answer lands once (the
// server answers a committed id with the version it made). A write that meets a newer
// version is rebased: patches re-applied to the newest version, `transact` functions re-run,
// a whole replacement handed to `onConflict`.

import { HearthError } from "./errors.js";
import { jsonPatch, mergePatch } from "./patches.js";

/** Store keys: `<user>|op|<seq>` for a queued write, `<user>|doc|<target>` for the last
 * known version of a document. One user's writes are never sent as another's. */
const opKey = (user, seq) => `${user}|op|${String(seq).padStart(12, "0")}`;
const docKey = (user, target) => `${user}|doc|${target}`;

export class Outbox {
  constructor(hearth, store) {
    this.h = hearth;
    this.store = store;
    this.user = null;
    this.ops = []; // this user's queued writes, oldest first
    this.docs = new Map(); // target -> last known server version { username, name?, version, data }
    this.waiting = new Map(); // opId -> { resolve, reject, fn? } for writes made in this session
    this.flushing = false;
    this.loaded = Promise.resolve();
    this.adding = Promise.resolve(); // writes being kept, in order (`add`)
    this.seq = 0; // the newest write's sequence number
  }

  /** Loads `user`'s queued writes and known documents (at sign-in, or offline from the
   * stored token). */
  load(user) {
    if (this.user === user) return this.loaded;
    this.user = user;
    this.ops = [];
    this.docs = new Map();
    if (!user) return (this.loaded = Promise.resolve());
    this.loaded = (async () => {
      const prefix = `${user}|`;
      const keys = (await this.store.keys()).filter((k) => typeof k === "string" && k.startsWith(prefix));
      const ops = [];
      for (const k of keys) {
        const value = await this.store.get(k);
        if (value === undefined || this.user !== user) continue;
        if (k.startsWith(`${prefix}op|`)) ops.push(value);
        else this.docs.set(k.slice(`${prefix}doc|`.length), value);
      }
      if (this.user !== user) return;
      // Writes queued while this load ran come after the stored ones.
      this.ops = [...ops.sort((a, b) => a.seq - b.seq), ...this.ops.filter((o) => !ops.some((s) => s.opId === o.opId))];
      this.seq = Math.max(this.seq, ...this.ops.map((o) => o.seq));
      this.h._emit("pending", this.h.pending);
      for (const target of new Set(this.ops.map((o) => o.target))) this.h._deliverLocal(target);
    })().catch((e) => this.h._emit("error", e));
    return this.loaded;
  }

  pendingFor(target) {
    return this.ops.some((o) => o.target === target);
  }

  /** The last known version of `target` with every queued write applied: what the app
   * should show. `null` when the document was never seen. */
  view(target) {
    const doc = this.docs.get(target);
    if (!doc) return null;
    let userdata = doc.data.userdata;
    const metadata = { ...doc.data.metadata };
    const mine = this.ops.filter((o) => o.target === target);
    for (const op of mine) {
      try {
        if (op.kind === "share") Object.assign(metadata, op.lists);
        else userdata = edit(userdata, op);
      } catch {
        // The server will refuse it too (a failing JSON Patch `test`); shown without it.
      }
    }
    return { ...doc, data: { metadata, userdata }, pending: mine.length > 0 };
  }

  /** Keeps `doc` (a whole document from the server) as `target`'s last known version. */
  remember(target, doc) {
    if (!this.user || !doc?.data?.metadata) return;
    const known = this.docs.get(target);
    if (known && known.version > doc.version && known.data.metadata.incarnation === doc.data.metadata.incarnation) return;
    const kept = { username: doc.username, name: doc.name, version: doc.version, data: doc.data };
    this.docs.set(target, kept);
    this.store.set(docKey(this.user, target), kept).catch((e) => this.h._emit("error", e));
  }

  /** Follows a change that carries only its `op` on the known version. */
  follow(target, change) {
    const doc = this.docs.get(target);
    if (!doc || change.version !== doc.version + 1 || !change.op) return;
    const op = change.op;
    let userdata = doc.data.userdata;
    if (op.replace) userdata = op.replace;
    else if (op.merge) userdata = mergePatch(userdata, op.merge);
    else if (op.jsonPatch) userdata = jsonPatch(userdata, op.jsonPatch);
    const metadata = { ...doc.data.metadata, version: change.version };
    if (op.collaborators) metadata.collaborators = op.collaborators;
    if (op.readers) metadata.readers = op.readers;
    if (change.at) metadata.lastUpdate = { at: change.at, by: change.by };
    this.remember(target, { ...doc, version: change.version, data: { metadata, userdata } });
  }

  /** Queues a write (`make`: the write, or a function making it once the writes before it
   * are queued); resolves when it commits (to its version, or `{version, userdata}` for
   * `transact`), rejects when it is refused or given up in a conflict. The promise may be
   * left unawaited: a refusal is also told by the `conflict` or `error` event, and an
   * unawaited one is not an unhandled rejection. */
  add(make, fn) {
    const done = new Promise((resolve, reject) => {
      // One at a time, in call order: each is kept in the store before it is shown or
      // counted, so a reload right after a write finds it; and `make` (a `transact`'s run)
      // sees every write queued before it.
      this.adding = this.adding.then(async () => {
        try {
          await this.loaded;
          if (!this.user) throw new HearthError("auth_required", "sign in first");
          const op = typeof make === "function" ? await make() : make;
          this.seq = Math.max(this.seq + 1, Date.now() * 1000);
          Object.assign(op, { opId: newOpId(), seq: this.seq, at: new Date().toISOString() });
          await this.store.set(opKey(this.user, op.seq), op);
          this.waiting.set(op.opId, { resolve, reject, fn });
          this.ops.push(op);
          this.h._emit("pending", this.h.pending);
          this.h._deliverLocal(op.target);
          this.flush();
        } catch (e) {
          reject(e);
        }
      });
    });
    done.catch(() => {});
    return done;
  }

  /** Sends queued writes in order while connected. */
  async flush() {
    if (this.flushing) return;
    this.flushing = true;
    let sent = 0;
    try {
      await this.loaded;
      while (this.h.ready && this.ops.length && this.user === this.h.username) {
        const op = this.ops[0];
        let version;
        try {
          version = await this.send(op);
        } catch (e) {
          if (e.code === "disconnected" || e.code === "closed") break;
          if (e.code === "timeout") continue; // it may have committed: resending is safe
          await this.drop(op, e);
          continue;
        }
        await this.done(op, version);
        sent++;
      }
      if (sent && !this.ops.length) this.h._emit("synced", { sent });
    } finally {
      this.flushing = false;
      // A write queued as the last send finished (its `flush` found this one running).
      if (this.ops.length && this.h.ready && this.user === this.h.username) setTimeout(() => this.flush(), 10);
    }
  }

  async send(op) {
    for (let attempt = 0; ; attempt++) {
      if (op.base === undefined || op.base === null) {
        // Written "on whatever is current": the base is fixed, and kept, before the first
        // send, so a resend after a lost answer is recognised (it is then stale).
        op.base = (await this.h._serverFetch(op.target)).version;
        await this.persist(op);
      }
      try {
        return (await this.h._send(frame(op))).version;
      } catch (e) {
        if (e.code === "rate_limited") {
          await sleep((e.retryAfter ?? 1) * 1000);
          continue;
        }
        if (e.code !== "version_mismatch" || attempt >= this.h.options.transactRetries) throw e;
        await this.rebase(op, e.version);
      }
    }
  }

  /** Someone else's version came first; the write was not applied (the server would have
   * answered its id). Patches and access lists go on top of the newest version; a
   * `transact` runs again; a whole replacement is the app's to settle (`onConflict`). */
  async rebase(op, current) {
    op.rebased = true;
    const fn = this.waiting.get(op.opId)?.fn;
    const replaces = op.kind === "transact" || (op.kind === "update" && !op.patch) || op.patch === "replace";
    if (op.kind === "transact" && fn) {
      const doc = await this.h._serverFetch(op.target);
      op.data = await fn(structuredClone(doc.data.userdata));
      op.base = doc.version;
    } else if (replaces) {
      const doc = await this.h._serverFetch(op.target);
      const server = { version: doc.version, userdata: doc.data.userdata };
      const settle = this.h.options.onConflict;
      const data = settle ? await settle({ target: op.target, opId: op.opId, local: op.data, server }) : undefined;
      if (data === undefined || data === null) {
        const e = new HearthError("conflict", `${op.target} changed to v${doc.version} meanwhile; kept the server's version`, { target: op.target, version: doc.version });
        e.server = server;
        throw e;
      }
      op.data = data;
      op.base = doc.version;
    } else {
      op.base = current;
    }
    await this.persist(op);
  }

  async done(op, version) {
    // Writes queued after this one on the same version were made on top of it.
    if (!op.rebased) {
      for (const later of this.ops) {
        if (later !== op && later.target === op.target && later.base === op.base) {
          later.base = version;
          await this.persist(later);
        }
      }
    }
    const doc = this.docs.get(op.target);
    if (doc && doc.version === op.base && op.kind !== "share") {
      try {
        const metadata = { ...doc.data.metadata, version };
        this.remember(op.target, { ...doc, version, data: { metadata, userdata: edit(doc.data.userdata, op) } });
      } catch {
        // Left for the next fetch or change to correct.
      }
    }
    await this.remove(op);
    const w = this.waiting.get(op.opId);
    this.waiting.delete(op.opId);
    w?.resolve(op.kind === "transact" ? { version, userdata: op.data } : version);
    // Its change may have been shown before this answer came, still marked pending.
    this.h._deliverLocal(op.target, true);
  }

  async drop(op, error) {
    await this.remove(op);
    const w = this.waiting.get(op.opId);
    this.waiting.delete(op.opId);
    w?.reject(error);
    const event = { target: op.target, opId: op.opId, kind: op.kind, local: op.data, error };
    if (error.server) event.server = error.server;
    const conflict = error.code === "conflict" || (op.rebased && error.code === "bad_request");
    this.h._emit(conflict ? "conflict" : "error", conflict ? event : error);
    this.h._deliverLocal(op.target, true);
  }

  async remove(op) {
    this.ops = this.ops.filter((o) => o !== op);
    await this.store.delete(opKey(this.user, op.seq));
    this.h._emit("pending", this.h.pending);
  }

  persist(op) {
    return this.store.set(opKey(this.user, op.seq), op);
  }
}

/** `op`'s edit applied to `userdata` (a copy). */
function edit(userdata, op) {
  if (op.kind === "transact" || !op.patch || op.patch === "replace") return structuredClone(op.data);
  if (op.patch === true || op.patch === "merge") return mergePatch(userdata, op.data);
  if (op.patch === "json-patch") return jsonPatch(userdata, op.data);
  throw new Error(`unknown patch ${op.patch}`);
}

function frame(op) {
  const metadata = { version: op.base, ...(op.lists ?? {}) };
  const f = { type: "update", opId: op.opId, target: op.target, data: { metadata } };
  if (op.kind !== "share") {
    f.data.userdata = op.data;
    f.patch = op.kind === "transact" ? false : op.patch;
  }
  return f;
}

function newOpId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
