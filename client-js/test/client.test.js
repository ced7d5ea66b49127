// hearth-client against the real server binary.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { HearthError, connect } from "../src/index.js";
import { processState, serverSuite, startServer, until } from "./server.js";

const suite = serverSuite({ before, after });
const client = (options) => suite.client(options);

describe("accounts", () => {
  test("signup, login, auth, logout", async () => {
    const anon = client();
    const generated = await anon.signup();
    assert.match(generated.username, /^[a-z]+-[a-z]+-\d{4}$/);
    assert.equal(anon.username, generated.username);

    const a = client();
    const name = `ann${Date.now() % 100000}`;
    const events = [];
    a.on("auth", (x) => events.push(x?.username ?? null));
    const signed = await a.signup(name, "correct horse");
    assert.equal(signed.username, name);

    const b = client();
    const logged = await b.login(name, "correct horse");
    assert.equal(logged.username, name);
    const c = client();
    assert.equal((await c.auth(logged.token)).username, name);

    await b.logout();
    assert.equal(b.token, null);
    await assert.rejects(client().auth(logged.token), (e) => e instanceof HearthError && e.code === "invalid_token");
    // `c` used the same token: it is told and signed out.
    await until(() => c.token === null, 5000, "revocation push");
    await assert.rejects(c.fetch(), { code: "auth_required" });

    await assert.rejects(client().login(name, "wrong horse!"), { code: "invalid_credentials" });
    await assert.rejects(client().signup(name, "correct horse"), { code: "username_taken" });
    await assert.rejects(client().signup("X", "correct horse"), { code: "bad_request" });
    assert.deepEqual(events, [name]);
  });

  test("the token can persist in a Storage", async () => {
    const store = new Map();
    const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v), removeItem: (k) => store.delete(k) };
    const a = client({ persist: storage });
    const { username, token } = await a.signup();
    assert.equal(store.get("hearth.token"), token);
    const again = client({ persist: storage });
    await until(() => again.ready, 5000, "reconnect with stored token");
    assert.equal(again.username, username);
    assert.equal((await again.fetch()).username, username);
    await again.logout();
    assert.equal(store.has("hearth.token"), false);
  });
});

describe("data", () => {
  test("fetch, update (replace, merge, json-patch), share, typed errors", async () => {
    const ann = client();
    const { username } = await ann.signup();
    const first = await ann.fetch();
    assert.equal(first.version, 0);
    assert.deepEqual(first.data.userdata, {});
    assert.equal(await ann.update({ a: { b: 1, c: 2 } }, 0), 1);
    assert.equal(await ann.update({ a: { c: null }, d: 4 }, 1, true), 2);
    assert.equal(await ann.update([{ op: "add", path: "/e", value: [1] }], 2, "json-patch"), 3);
    assert.deepEqual((await ann.fetch()).data.userdata, { a: { b: 1 }, d: 4, e: [1] });
    assert.deepEqual((await ann.fetch(["a.b", "e"])).data.userdata, { a: { b: 1 }, e: [1] });

    const stale = await ann.update({}, 1).catch((e) => e);
    assert.ok(stale instanceof HearthError);
    assert.equal(stale.code, "version_mismatch");
    assert.equal(stale.version, 3);

    const bob = client();
    const b = await bob.signup();
    await assert.rejects(bob.fetch(username), { code: "unauthorized" });
    assert.equal(await ann.share({ collaborators: [b.username] }, 3), 4);
    const seen = await bob.fetch(username, ["d"]);
    assert.deepEqual(seen.data.userdata, { d: 4 });
    assert.equal(await bob.update(username, { fromBob: true }, 4, true), 5);
    await assert.rejects(bob.share(username, { collaborators: [] }, 5), { code: "unauthorized" });
  });

  test("blobs: upload, share through a document, download, delete", async () => {
    const owner = client();
    const reader = client();
    const stamp = Date.now() % 100000;
    await owner.signup(`blobowner${stamp}`, "correct horse");
    await reader.signup(`blobreader${stamp}`, "correct horse");
    const bytes = new TextEncoder().encode("a photo, pretend");
    const put = await owner.putBlob(bytes, "image/png");
    assert.equal(put.size, bytes.length);
    assert.match(put.sha256, /^[0-9a-f]{64}$/);
    const v = await owner.update({ photo: `blob:${put.sha256}` }, 0);
    await owner.share({ readers: [reader.username] }, v);
    await assert.rejects(reader.getBlob(put.sha256), (e) => e instanceof HearthError && e.code === "not_found");
    const got = await reader.getBlob(put.sha256, { doc: owner.username });
    assert.equal(got.type, "image/png");
    assert.deepEqual(new Uint8Array(await got.arrayBuffer()), bytes);
    await owner.deleteBlob(put.sha256);
    await assert.rejects(owner.getBlob(put.sha256), (e) => e.code === "not_found");
  });

  test("transact under contention: two clients, 100 increments each, end at 200", async () => {
    const a = client();
    const { token, username } = await a.signup();
    const b = client({ token });
    await until(() => b.ready && b.username === username, 5000, "b signed in");
    const inc = (c) => c.transact((d) => ({ ...d, counter: (d.counter ?? 0) + 1 }));
    const run = async (c) => {
      for (let i = 0; i < 100; i++) await inc(c);
    };
    await Promise.all([run(a), run(b)]);
    const final = await a.fetch();
    assert.equal(final.data.userdata.counter, 200);
  });
});

describe("watch", () => {
  test("snapshot, ordered changes, fields, unwatch", async () => {
    const ann = client();
    await ann.signup();
    const got = [];
    const stop = ann.watch((c) => got.push(c));
    await stop.ready;
    assert.equal(got[0].snapshot, true);
    assert.equal(got[0].version, 0);
    for (let v = 0; v < 5; v++) await ann.update({ n: v }, v, true);
    await until(() => got.length === 6, 5000, "5 changes");
    assert.deepEqual(got.map((c) => c.version), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(got[5].op, { merge: { n: 4 } });
    assert.equal(got[5].data.userdata.n, 4);
    stop();
    await ann.update({ n: 99 }, 5, true);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(got.length, 6, "nothing after unwatch");

    const fielded = [];
    const stopF = ann.watch({ fields: ["n"] }, (c) => fielded.push(c));
    await stopF.ready;
    await ann.update({ other: 1 }, 6, true);
    await until(() => fielded.length === 2, 5000, "fielded change");
    assert.deepEqual(fielded[1].data.userdata, { n: 99 });
  });

  test("a removed collaborator's watch ends with an error", async () => {
    const ann = client();
    const a = await ann.signup();
    const bob = client();
    const b = await bob.signup();
    await ann.share({ readers: [b.username] }, 0);
    let ended;
    const stop = bob.watch(a.username, { onError: (e) => (ended = e) }, () => {});
    await stop.ready;
    await ann.share({ readers: [] }, 1);
    await until(() => ended, 5000, "watch ended");
    assert.equal(ended.code, "unauthorized");
    assert.equal(ended.detail, "access revoked");
    await assert.rejects(bob.watch(a.username, () => {}).ready, { code: "unauthorized" });
  });
});

describe("resilience", () => {
  test("reconnects after a restart and resumes watches without gap or duplicate", async () => {
    let srv = await startServer();
    try {
      const events = [];
      const writer = connect(srv.url, { WebSocket, requestTimeout: 5000, reconnect: { min: 50, max: 500, factor: 2 } });
      const watcher = connect(srv.url, { WebSocket, requestTimeout: 5000, reconnect: { min: 50, max: 500, factor: 2 } });
      suite.closeLater(writer, watcher);
      const { token, username } = await writer.signup();
      await watcher.auth(token);
      watcher.on("disconnected", () => events.push("disconnected"));
      watcher.on("connected", () => events.push("connected"));
      const versions = [];
      await watcher.watch((c) => versions.push(c.version)).ready;
      await writer.update({ n: 1 }, 0, true);
      await until(() => versions.length === 2, 5000, "first change");

      srv = await srv.restart();
      await until(() => writer.ready && watcher.ready, 10_000, "both reconnected");
      assert.equal(watcher.username, username, "re-authenticated with the token");
      assert.deepEqual(events, ["disconnected", "connected"]);
      await writer.update({ n: 2 }, 1, true);
      await writer.update({ n: 3 }, 2, true);
      await until(() => versions.length === 4, 5000, "changes after restart");
      assert.deepEqual(versions, [0, 1, 2, 3]);
    } finally {
      await srv.cleanup();
    }
  });

  test("requests time out when the server stops answering, and fail fast when it drops", async () => {
    const srv = await startServer();
    try {
      const c = connect(srv.url, { WebSocket, requestTimeout: 300, reconnect: false });
      suite.closeLater(c);
      await c.signup();
      srv.child.kill("SIGSTOP");
      // kill() returns before every thread has stopped; wait until the kernel says so.
      await until(() => processState(srv.child.pid) === "T", 5000, "server stopped");
      const started = Date.now();
      await assert.rejects(c.fetch(), { code: "timeout" });
      assert.ok(Date.now() - started < 2000);
      const pending = c.fetch().catch((e) => e);
      srv.child.kill("SIGKILL");
      const error = await pending;
      assert.ok(error instanceof HearthError);
      assert.ok(["disconnected", "timeout"].includes(error.code), error.code);
      await assert.rejects(c.fetch(), { code: "timeout" });
    } finally {
      srv.child.kill("SIGCONT");
      await srv.cleanup();
    }
  });
});

describe("sessions and the network (issue 25)", () => {
  test("a request made while disconnected is answered after the reconnect", async () => {
    let own = await startServer();
    const c = connect(own.url, { WebSocket, requestTimeout: 8000, reconnect: { min: 100, max: 400, factor: 2 } });
    try {
      await c.signup();
      await own.stop();
      await until(() => !c.connected, 5000, "the disconnect");
      const pending = c.fetch();
      // Several failed reconnect attempts happen while the request waits.
      await new Promise((r) => setTimeout(r, 1200));
      own = await startServer({ dataDir: own.dataDir, port: own.port });
      const reply = await pending;
      assert.equal(reply.username, c.username);
      assert.equal(reply.version, 0);
    } finally {
      c.close();
      await own.cleanup();
    }
  });

  test("the client renews its token before it expires", async () => {
    const own = await startServer({ env: { TOKEN_TTL: "3" } });
    const c = connect(own.url, { WebSocket, requestTimeout: 5000, refreshBefore: 0.5 });
    try {
      const first = (await c.signup()).token;
      const seen = [];
      c.on("error", (e) => seen.push(e.code));
      await new Promise((r) => setTimeout(r, 4500));
      assert.notEqual(c.token, first, "a new token");
      assert.equal((await c.fetch()).version, 0, "still signed in past the first token's expiry");
      assert.deepEqual(seen, []);
    } finally {
      c.close();
      await own.cleanup();
    }
  });

  test("transact waits out rate limits", async () => {
    const own = await startServer({ env: { MAX_REQUESTS_PER_SECOND: "2" } });
    const c = connect(own.url, { WebSocket, requestTimeout: 5000 });
    try {
      await c.signup();
      let last;
      for (let i = 0; i < 4; i++) last = await c.transact((d) => ({ n: (d.n ?? 0) + 1 }));
      assert.deepEqual(last.userdata, { n: 4 });
      assert.equal(last.version, 4, "each transaction committed once");
    } finally {
      c.close();
      await own.cleanup();
    }
  });

  test("persist: true in Node says what it needs; a file path works", async () => {
    assert.throws(() => connect(suite.server.url, { WebSocket, persist: true }), /localStorage.*persist: "path/);
    const { mkdtemp } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const file = `${await mkdtemp(`${tmpdir()}/hearth-token-`)}/token.json`;
    const a = client({ persist: file });
    const { token } = await a.signup();
    const b = client({ persist: file });
    assert.equal(b.token, token);
    await until(() => b.username !== null, 5000, "sign-in from the file");
  });
});

describe("hostile sockets (issue 26)", () => {
  test("every client sending an oversize message sees 1009, not a reset", async () => {
    const big = JSON.stringify({ type: "fetch", pad: "x".repeat(3 * 1024 * 1024) });
    const codes = await Promise.all(
      Array.from({ length: 50 }, () =>
        new Promise((resolve) => {
          const ws = new WebSocket(suite.server.url);
          ws.on("open", () => ws.send(big));
          ws.on("error", () => {});
          ws.on("close", (code) => resolve(code));
        }),
      ),
    );
    assert.deepEqual([...new Set(codes)], [1009], `close codes: ${codes.join(",")}`);
  });
});

describe("named documents", () => {
  test("create, a handle's fetch/update/watch, share with live events, list, delete", async () => {
    const ann = client();
    const bob = client();
    const { username: annName } = await ann.signup();
    const { username: bobName } = await bob.signup();
    const shared = [];
    const unshared = [];
    bob.on("shared", (e) => shared.push(e));
    bob.on("unshared", (e) => unshared.push(e));

    const created = await ann.create("groceries", { userdata: { milk: 1 } });
    assert.equal(created.name, "groceries");
    assert.equal(created.version, 0);
    await assert.rejects(ann.create("groceries"), (e) => e.code === "already_exists");
    const g = ann.doc("groceries");
    assert.equal(g.target, `${annName}/groceries`);

    const seen = [];
    const stop = g.watch({}, (c) => seen.push(c));
    await stop.ready;
    assert.equal(seen[0].name, "groceries");
    assert.equal(await g.update({ eggs: 6 }, 0, true), 1);
    await until(() => seen.length === 2);
    assert.deepEqual(seen[1].data.userdata, { milk: 1, eggs: 6 });
    assert.equal((await ann.fetch()).version, 0, "the default document did not move");

    await g.share({ collaborators: [bobName] }, 1);
    await until(() => shared.length === 1);
    assert.deepEqual(shared[0], { owner: annName, name: "groceries", role: "write" });
    const bobList = await bob.list();
    assert.equal(bobList.shared[0].name, "groceries");
    const theirs = bob.doc(`${annName}/groceries`);
    const { userdata } = await theirs.transact((u) => ({ ...u, tea: true }));
    assert.deepEqual(userdata, { milk: 1, eggs: 6, tea: true });
    await until(() => seen.length === 4, 5000, "ann sees the share and bob's write");

    const annList = await ann.list();
    assert.deepEqual(annList.documents.map((d) => d.name), ["groceries"]);
    let ended;
    const bobWatch = theirs.watch({ onError: (e) => (ended = e) }, () => {});
    await bobWatch.ready;
    await g.delete();
    await until(() => ended && unshared.length === 1);
    assert.equal(ended.code, "not_found");
    assert.equal(ended.detail, "deleted");
    await assert.rejects(g.fetch(), (e) => e.code === "unauthorized");
    stop();
  });
});
