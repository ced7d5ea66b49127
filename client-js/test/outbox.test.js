// The outbox (issue 30): writes made offline are kept, shown at once, sent once and merged.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { connect, memoryStore } from "../src/index.js";
import { startServer, until } from "./server.js";

const FAST = { min: 50, max: 300, factor: 2 };
let dir;
const clients = [];
function client(url, options = {}) {
  const c = connect(url, { WebSocket, requestTimeout: 5000, reconnect: FAST, ...options });
  clients.push(c);
  return c;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hearth-outbox-"));
});
after(async () => {
  for (const c of clients) c.close();
  await rm(dir, { recursive: true, force: true });
});

/** The change log of `user`'s document as `[version, opId]` pairs. */
async function log(httpUrl, user, token, name) {
  const path = name ? `/v1/users/${user}/docs/${name}/changes?from=1` : `/v1/users/${user}/changes?from=1`;
  const res = await fetch(httpUrl + path, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  return (await res.json()).changes.map((c) => [c.version, c.opId]);
}

/** Keeps `c` from reconnecting until `c._open()`. */
function offline(c) {
  c.options.reconnect = false;
  clearTimeout(c._retryTimer);
  c.ws?.close();
}

/** A TCP relay to `port` that can swallow what the server sends next and cut the line:
 * an answer lost after the server committed. */
function relay(port) {
  const sockets = new Set();
  let cutOnReply = false;
  const server = net.createServer((down) => {
    const up = net.connect(port, "127.0.0.1");
    sockets.add(down).add(up);
    down.on("data", (d) => up.write(d));
    up.on("data", (d) => {
      if (cutOnReply) {
        cutOnReply = false;
        up.destroy();
        down.destroy();
        return;
      }
      down.write(d);
    });
    for (const s of [up, down]) s.on("error", () => {}).on("close", () => (up.destroy(), down.destroy()));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        url: `ws://127.0.0.1:${server.address().port}/ws`,
        cutNextReply: () => (cutOnReply = true),
        close: () => {
          for (const s of sockets) s.destroy();
          server.close();
        },
      }),
    ),
  );
}

describe("outbox (issue 30)", () => {
  test("offline writes are shown at once, kept across a restart of the app, and land once, in order", async () => {
    let srv = await startServer();
    const file = join(dir, "ann.json");
    try {
      const ann = client(srv.url, { outbox: file });
      const { token, username } = await ann.signup();
      const seen = [];
      await ann.watch((c) => seen.push(c)).ready;
      await ann.update({ list: { milk: 1 } }, 0, "merge");
      await until(() => seen.some((c) => c.version === 1 && !c.pending), 5000, "the first write, live");

      await srv.stop();
      await until(() => !ann.connected, 5000, "offline");
      // Three writes offline: none is sent, each is shown at once.
      [
        ann.update({ list: { eggs: 6 } }, 1, "merge"),
        ann.update([{ op: "add", path: "/list/tea", value: true }], 1, "json-patch"),
        ann.transact((u) => ({ ...u, count: (u.count ?? 0) + 1 })),
      ].forEach((w) => w.catch(() => {})); // answered to the next app, not this one
      await until(() => ann.pending.count === 3, 5000, "three pending");
      const shown = seen.at(-1);
      assert.equal(shown.pending, true);
      assert.equal(shown.version, 1, "still the server's version");
      assert.deepEqual(shown.data.userdata, { list: { milk: 1, eggs: 6, tea: true }, count: 1 });
      const offline = await ann.fetch();
      assert.equal(offline.offline, true);
      assert.deepEqual(offline.data.userdata, shown.data.userdata);
      const ids = ann.pending.ops.map((o) => o.opId);
      assert.equal(new Set(ids).size, 3);
      ann.close(); // the app quits while offline

      // Started again, still offline: the writes and the document are there.
      const again = client(srv.url, { outbox: file, token });
      const view = [];
      again.watch((c) => view.push(c));
      await until(() => again.pending.count === 3 && view.length > 0, 5000, "the outbox read back");
      assert.equal(view[0].offline, true);
      assert.deepEqual(view[0].data.userdata, shown.data.userdata);
      const synced = new Promise((resolve) => again.on("synced", resolve));
      srv = await startServer({ dataDir: srv.dataDir, port: srv.port });
      assert.deepEqual(await synced, { sent: 3 });
      assert.equal(again.pending.count, 0);
      await until(() => view.at(-1)?.version === 4 && !view.at(-1).pending, 5000, "the server's version shown");
      assert.deepEqual(view.at(-1).data.userdata, { list: { milk: 1, eggs: 6, tea: true }, count: 1 });
      const entries = await log(srv.httpUrl, username, token);
      assert.deepEqual(entries.map(([v]) => v), [1, 2, 3, 4]);
      assert.deepEqual(entries.slice(1).map(([, id]) => id), ids, "each write once, in order");
    } finally {
      await srv.cleanup();
    }
  });

  test("an answer lost after the commit: the resend is answered with the first version", async () => {
    const srv = await startServer();
    const line = await relay(srv.port);
    try {
      const ann = client(line.url, { outbox: memoryStore() });
      const { token, username } = await ann.signup();
      line.cutNextReply();
      const version = await ann.update({ milk: 2 }, 0, "merge");
      assert.equal(version, 1, "answered after the reconnect, with the version it made");
      assert.ok(!ann.pending.count);
      const doc = await ann.fetch();
      assert.equal(doc.version, 1, "applied once");
      const entries = await log(srv.httpUrl, username, token);
      assert.equal(entries.length, 1);
    } finally {
      line.close();
      await srv.cleanup();
    }
  });

  test("two clients' offline edits to the same keys: both rebased, the later arrival wins each key", async () => {
    let srv = await startServer();
    try {
      const ann = client(srv.url, { outbox: memoryStore() });
      const { token, username } = await ann.signup();
      const bob = client(srv.url, { outbox: memoryStore() });
      const { username: bobName } = await bob.signup();
      await ann.share({ collaborators: [bobName] }, 0);
      await ann.fetch();
      await bob.fetch(username);
      const conflicts = [];
      ann.on("conflict", (c) => conflicts.push(c));
      bob.on("conflict", (c) => conflicts.push(c));

      await srv.stop();
      await until(() => !ann.connected && !bob.connected, 5000, "both offline");
      ann.update({ milk: 1, note: "ann" }, 1, "merge");
      bob.update(username, { milk: 2, bread: 1 }, 1, "merge");
      bob.update(username, [{ op: "add", path: "/eggs", value: 12 }], 1, "json-patch");
      // A whole replacement made offline by each: the second to arrive is a conflict.
      ann.update({ replaced: "by ann" }, 1);
      await until(() => ann.pending.count === 2 && bob.pending.count === 2, 5000, "queued");

      // Ann comes back first, then Bob: the documented order.
      offline(bob);
      srv = await startServer({ dataDir: srv.dataDir, port: srv.port });
      await until(() => ann.pending.count === 0, 10_000, "ann synced");
      bob.options.reconnect = FAST;
      bob._open();
      await until(() => bob.pending.count === 0, 10_000, "bob synced");
      const doc = await ann.fetch();
      // Ann's merge (v2), her replacement on top (v3: her own writes chain), then Bob's
      // patches rebased onto v3 (v4, v5).
      assert.equal(doc.version, 5);
      assert.deepEqual(doc.data.userdata, { replaced: "by ann", milk: 2, bread: 1, eggs: 12 });
      assert.deepEqual(conflicts, []);
      const entries = await log(srv.httpUrl, username, token);
      assert.equal(new Set(entries.map(([, id]) => id)).size, entries.length);

      // A replacement offline against someone else's newer version: kept the server's,
      // reported; or settled by onConflict.
      await srv.stop();
      await until(() => !ann.connected && !bob.connected, 5000, "both offline again");
      bob.update(username, { mine: "bob" }, 5);
      ann.update({ mine: "ann" }, 5);
      offline(bob);
      srv = await startServer({ dataDir: srv.dataDir, port: srv.port });
      await until(() => ann.pending.count === 0, 10_000, "ann synced");
      bob.options.reconnect = FAST;
      bob._open();
      await until(() => conflicts.length === 1, 10_000, "bob's conflict");
      assert.equal(conflicts[0].target, username);
      assert.deepEqual(conflicts[0].local, { mine: "bob" });
      assert.deepEqual(conflicts[0].server, { version: 6, userdata: { mine: "ann" } });
      assert.deepEqual((await bob.fetch(username)).data.userdata, { mine: "ann" });

      const carol = client(srv.url, {
        outbox: memoryStore(),
        onConflict: ({ local, server }) => ({ ...server.userdata, ...local }),
      });
      await carol.auth(token);
      await carol.fetch();
      await ann.update({ other: 1 }, 6, "merge");
      const v = await carol.update({ mine: "carol" }, 6);
      assert.equal(v, 8);
      assert.deepEqual((await carol.fetch()).data.userdata, { mine: "carol", other: 1 });
    } finally {
      await srv.cleanup();
    }
  });

  test("without an outbox nothing changes; a bad store is refused at once", async () => {
    const srv = await startServer();
    try {
      assert.throws(() => connect(srv.url, { WebSocket, outbox: true }), /IndexedDB/);
      assert.throws(() => connect(srv.url, { WebSocket, outbox: { get() {} } }), /lacks set/);
      const c = client(srv.url);
      await c.signup();
      await assert.rejects(c.update({ a: 1 }, 5), { code: "version_mismatch" });
      assert.equal(c.pending.count, 0);
    } finally {
      await srv.cleanup();
    }
  });
});

test("a damaged outbox file is reported and never overwritten", async () => {
  const srv = await startServer();
  const { writeFile, readFile } = await import("node:fs/promises");
  const file = join(dir, "damaged.json");
  try {
    const first = client(srv.url, { outbox: memoryStore() });
    const { token } = await first.signup();
    const damaged = '{"someone|op|000000000001": {"opId": "x", "seq": 1, "kind": "upd'; // cut mid-write
    await writeFile(file, damaged);
    const errors = [];
    const c = client(srv.url, { outbox: file, token });
    c.on("error", (e) => errors.push(e));
    await until(() => errors.length > 0, 5000, "the damage reported");
    assert.match(errors[0].message, /damaged\.json/);
    await assert.rejects(c.update({ a: 1 }, 0, "merge"), /damaged\.json/);
    assert.equal(await readFile(file, "utf8"), damaged, "left for the operator to look at");
  } finally {
    await srv.cleanup();
  }
});
