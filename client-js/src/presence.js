// Presence on one document: this client's announcement ("I am here, typing"), and the list
// of who is present, kept current from the server's pushes and announced again after every
// reconnect.

export class PresenceHandle {
  constructor(hearth, target, state) {
    this.h = hearth;
    this.target = target;
    this.state = state; // null: listening only
    this.list = [];
    this.active = true;
    // The server numbers a room's changes: a reply's list is as of `seq`, and a push sent
    // after that list was taken can reach us before the reply does.
    this._seq = 0;
    this._touched = new Map(); // username -> seq of the newest push about them
    this._fns = new Set();
    this._ownWatch = null;
    this.ready = this._announce();
    this.ready.catch(() => {});
  }

  /** Listens for `change` (the list of who is present, longest there first). */
  on(event, fn) {
    if (event !== "change") throw new TypeError(`presence handles emit "change", not ${event}`);
    this._fns.add(fn);
    return () => this._fns.delete(fn);
  }

  /** Changes this client's state (at most 10 times a second). */
  set(state) {
    this.state = state;
    return this._send("join");
  }

  /** Ends this client's presence and stops listening. */
  async leave() {
    if (!this.active) return;
    this.active = false;
    this.h._presences.delete(this);
    const ownWatch = this._ownWatch;
    this._ownWatch = null;
    if (ownWatch) ownWatch();
    else if (this.h.ready) await this.h._request({ type: "presence", target: this.target, action: "leave" }).catch(() => {});
    this._fns.clear();
  }

  /** Watches the document if the app does not (the server wants a watching socket), then
   * announces this client, or only asks who is present. */
  async _announce() {
    if (!this.active) return;
    if (!this.h._watching(this.target)) {
      this._ownWatch = this.h.watch(this.target, {}, () => {});
    }
    await this.h._watchReady(this.target);
    // A new connection: its room counts afresh (the server may have restarted).
    this._seq = 0;
    this._touched.clear();
    await this._send(this.state === null ? "list" : "join");
  }

  async _send(action) {
    if (!this.active) return;
    const frame = { type: "presence", target: this.target, action };
    if (action === "join") frame.state = this.state;
    const reply = await this.h._request(frame);
    if (!this.active) return;
    const at = reply.seq ?? Infinity;
    // People a push told us about after the list was taken: the push is newer.
    const newer = (user) => (this._touched.get(user) ?? -1) > at;
    this._set([...reply.present.filter((p) => !newer(p.username)), ...this.list.filter((p) => newer(p.username))]);
    if (reply.seq !== undefined && reply.seq > this._seq) this._seq = reply.seq;
  }

  /** A pushed `join`, `update` or `leave`. */
  _pushed(frame) {
    if (frame.seq !== undefined) {
      if (frame.seq <= this._seq) return; // the list already holds it
      this._seq = frame.seq;
      this._touched.set(frame.user, frame.seq);
    }
    const rest = this.list.filter((p) => p.username !== frame.user);
    if (frame.event === "leave") this._set(rest);
    else this._set([...rest, { username: frame.user, connections: frame.connections, state: frame.state, since: frame.since }]);
  }

  _set(list) {
    this.list = [...list].sort((a, b) => (a.since < b.since ? -1 : a.since > b.since ? 1 : a.username < b.username ? -1 : 1));
    for (const fn of this._fns) {
      try {
        fn(this.list);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}
