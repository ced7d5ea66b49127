// personal-backend's clients on Hearth: the real socket.io-client against /socket.io/, over
// each transport, with the seed's events exactly as its index.js has them.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { io } from "socket.io-client";
import WebSocket from "ws";

import { connect } from "../src/index.js";
import { nextEvent, startServer } from "./server.js";

let server;
const sockets = [];

before(async () => {
  server = await startServer({ env: { PING_INTERVAL: "1000", IDLE_TIMEOUT: "3000" } });
});
after(async () => {
  for (const s of sockets) s.close();
  await server.cleanup();
});

function open(transports) {
  const s = io(server.httpUrl, { transports, reconnection: false, forceNew: true });
  sockets.push(s);
  return s;
}

const next = nextEvent;

async function signedUp(transports) {
  const s = open(transports);
  await next(s, "connect");
  s.emit("signup");
  const [username, token] = await next(s, "auth");
  return { s, username, token };
}

const kinds = {
  "polling, then the upgrade": ["polling", "websocket"],
  "WebSocket only": ["websocket"],
  "polling only": ["polling"],
};

for (const [kind, transports] of Object.entries(kinds)) {
  describe(`socket.io, ${kind}`, () => {
    test("the seed's events: signup, auth, update, fetch, watch, unwatch, and its errors", async () => {
      const { s, username, token } = await signedUp(transports);
      assert.match(username, /^[a-z]+-[a-z]+-\d{4}$/);
      assert.equal(typeof token, "string");
      if (transports.length === 2) {
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(s.io.engine.transport.name, "websocket", "upgraded");
      }

      // fetch(): my own document, at version 0.
      s.emit("fetch");
      let [target, data] = await next(s, "data");
      assert.equal(target, username);
      assert.equal(data.metadata.version, 0);
      assert.deepEqual(data.userdata, {});

      // update(newData): a replacement, answered with `version`.
      s.emit("update", { metadata: { version: 0 }, userdata: { a: { b: 1 }, keep: true } });
      assert.deepEqual(await next(s, "version"), [username, 1]);
      // A patch is the seed's Object.assign: top-level keys replaced, null kept as null.
      s.emit("update", { metadata: { version: 1 }, userdata: { a: { c: 2 }, gone: null } }, null, true);
      assert.deepEqual(await next(s, "version"), [username, 2]);
      s.emit("fetch", username, ["a.c", "keep"]);
      [target, data] = await next(s, "data");
      assert.deepEqual(data.userdata, { a: { c: 2 }, keep: true });
      s.emit("fetch");
      [, data] = await next(s, "data");
      assert.deepEqual(data.userdata, { a: { c: 2 }, keep: true, gone: null });

      // The seed's error messages, on the event its code uses.
      s.emit("update", { metadata: { version: 0 }, userdata: {} });
      assert.deepEqual(await next(s, "issue"), ["version mismatch"]);
      const other = await signedUp(transports);
      s.emit("fetch", other.username);
      assert.deepEqual(await next(s, "issue"), ["unauthorized"]);
      s.emit("unwatch", other.username);
      assert.deepEqual(await next(s, "error"), ["unauthorized"]);

      // watch: the other user adds me as a collaborator; my change reaches their watch.
      other.s.emit("update", { metadata: { version: 0, collaborators: [username] }, userdata: { list: [] } });
      assert.deepEqual(await next(other.s, "version"), [other.username, 1]);
      other.s.emit("watch");
      s.emit("watch", other.username);
      await new Promise((r) => setTimeout(r, 100));
      const theirs = next(other.s, "change");
      const ours = next(s, "change");
      s.emit("update", { metadata: { version: 1 }, userdata: { list: ["milk"] } }, other.username);
      const [changed, changedData] = await theirs;
      assert.equal(changed, other.username);
      assert.deepEqual(changedData.userdata, { list: ["milk"] });
      assert.equal(changedData.metadata.lastUpdate.by, username);
      const [mine] = await ours;
      assert.equal(mine, other.username);
      s.emit("unwatch", other.username);
      await new Promise((r) => setTimeout(r, 100));

      // auth(token) on a new connection signs in as the same user; a bad token is told.
      const again = open(transports);
      await next(again, "connect");
      again.emit("auth", "not-a-token");
      assert.deepEqual(await next(again, "issue"), ["invalid token"]);
      again.emit("auth", token);
      assert.deepEqual(await next(again, "auth"), [username, token]);
    });
  });
}

test("a watcher on /ws and one on socket.io see the same versions in the same order", async () => {
  const { s, username, token } = await signedUp(["websocket"]);
  const hearth = connect(server.url, { WebSocket, requestTimeout: 5000 });
  await hearth.auth(token);
  const viaWs = [];
  const unwatch = hearth.watch(username, (c) => viaWs.push(c.version));
  await unwatch.ready;
  const viaSio = [];
  s.on("change", (_, data) => viaSio.push(data.metadata.version));
  s.emit("watch");
  await new Promise((r) => setTimeout(r, 100));
  for (let v = 0; v < 20; v++) {
    if (v % 2) {
      s.emit("update", { metadata: { version: v }, userdata: { v } }, null, true);
      await next(s, "version");
    }
    else await hearth.update(username, { v }, v, true);
  }
  const deadline = Date.now() + 5000;
  // viaWs starts with the watch's snapshot (version 0).
  while ((!viaWs.includes(20) || viaSio.length < 20) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const expected = Array.from({ length: 20 }, (_, i) => i + 1);
  assert.deepEqual(viaSio, expected);
  assert.deepEqual(viaWs.filter((v) => v > 0), expected);
  unwatch();
  hearth.close();
});

test("a client reconnects by itself after a restart and signs in again with its token", async () => {
  const { s, username, token } = await signedUp(["polling", "websocket"]);
  s.emit("update", { metadata: { version: 0 }, userdata: { kept: true } });
  await next(s, "version");
  const s2 = io(server.httpUrl, { reconnectionDelay: 100, reconnectionDelayMax: 200, forceNew: true });
  sockets.push(s2);
  await next(s2, "connect");
  // As the seed's page does: sign in again on every (re)connect.
  s2.on("connect", () => s2.emit("auth", token));
  s2.emit("auth", token);
  await next(s2, "auth");
  const down = next(s2, "disconnect");
  server = await server.restart();
  await down;
  const [again] = await next(s2, "auth", 15_000);
  assert.equal(again, username);
  s2.emit("fetch");
  const [, data] = await next(s2, "data");
  assert.deepEqual(data.userdata, { kept: true });
  s.close();
});

test("Engine.IO refuses what it does not speak", async () => {
  const get = (q) => fetch(`${server.httpUrl}/socket.io/?${q}`);
  let r = await get("EIO=3&transport=polling");
  assert.equal(r.status, 400);
  assert.deepEqual(await r.json(), { code: 5, message: "Unsupported protocol version" });
  r = await get("EIO=4&transport=carrier-pigeon");
  assert.deepEqual(await r.json(), { code: 0, message: "Transport unknown" });
  r = await get("EIO=4&transport=polling&sid=nobody");
  assert.deepEqual(await r.json(), { code: 1, message: "Session ID unknown" });
  // A handshake, then a packet that is not Engine.IO: the connection is closed.
  r = await get("EIO=4&transport=polling");
  const open = JSON.parse((await r.text()).slice(1));
  assert.deepEqual(open.upgrades, ["websocket"]);
  assert.equal(open.pingInterval, 1000);
  const post = await fetch(`${server.httpUrl}/socket.io/?EIO=4&transport=polling&sid=${open.sid}`, { method: "POST", body: "x" });
  assert.equal(post.status, 400);
  // Gone: refused, or (while it is being taken down) answered with Engine.IO's `close`.
  r = await get(`EIO=4&transport=polling&sid=${open.sid}`);
  const body = await r.text();
  assert.ok(r.status === 400 || (r.status === 200 && body === "1"), `${r.status} ${body}`);
});

test("an aborted poll does not make the next one a second poll", async () => {
  const r = await fetch(`${server.httpUrl}/socket.io/?EIO=4&transport=polling`);
  const { sid } = JSON.parse((await r.text()).slice(1));
  const url = `${server.httpUrl}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  const abort = new AbortController();
  const first = fetch(url, { signal: abort.signal }).catch(() => null);
  await new Promise((res) => setTimeout(res, 100));
  abort.abort();
  await first;
  await new Promise((res) => setTimeout(res, 100));
  // Join the namespace so the next poll has an answer waiting.
  assert.equal((await fetch(url, { method: "POST", body: "40" })).status, 200);
  const next = await fetch(url);
  assert.equal(next.status, 200);
  assert.match(await next.text(), /^40\{"sid"/);
});

test("a client that sends and never reads is closed, not buffered without end", async () => {
  const r = await fetch(`${server.httpUrl}/socket.io/?EIO=4&transport=polling`);
  const { sid } = JSON.parse((await r.text()).slice(1));
  const url = `${server.httpUrl}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  // Pings answered with pongs nobody collects: 300k per body, well past OUTBOUND_BUFFER.
  const body = Array(300_000).fill("2").join("\x1e");
  let refused = false;
  for (let i = 0; i < 20 && !refused; i++) refused = (await fetch(url, { method: "POST", body })).status === 400;
  assert.ok(refused, "the connection was closed");
  const poll = await fetch(url);
  assert.equal(poll.status, 400);
});

test("a client that stops answering pings is dropped", async () => {
  const r = await fetch(`${server.httpUrl}/socket.io/?EIO=4&transport=polling`);
  const { sid } = JSON.parse((await r.text()).slice(1));
  // Never polls, never pongs: gone after pingInterval + pingTimeout (1 + 2 s here).
  await new Promise((res) => setTimeout(res, 4000));
  const poll = await fetch(`${server.httpUrl}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
  assert.equal(poll.status, 400);
  assert.equal((await poll.json()).code, 1);
});

test("Origin checks, rate limits and metrics apply to socket.io as to /ws", async () => {
  const guarded = await startServer({ env: { CORS_ORIGINS: "https://app.example", MAX_REQUESTS_PER_SECOND: "5" } });
  try {
    const handshake = (origin) =>
      fetch(`${guarded.httpUrl}/socket.io/?EIO=4&transport=polling`, { headers: origin ? { Origin: origin } : {} });
    const refused = await handshake("https://evil.example");
    assert.equal(refused.status, 403);
    assert.deepEqual(await refused.json(), { code: 4, message: "Forbidden" });
    assert.equal((await handshake("https://app.example")).status, 200);

    // A burst past MAX_REQUESTS_PER_SECOND (burst: twice that) is refused, as on /ws.
    const s = io(guarded.httpUrl, { transports: ["websocket"], reconnection: false, forceNew: true });
    sockets.push(s);
    await next(s, "connect");
    const issues = [];
    s.on("issue", (m) => issues.push(m));
    for (let i = 0; i < 30; i++) s.emit("fetch");
    const deadline = Date.now() + 3000;
    while (!issues.some((m) => /rate/i.test(m)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(issues.some((m) => /rate/i.test(m)), JSON.stringify(issues));

    // Its frames are counted with /ws's.
    const metrics = await (await fetch(`${guarded.httpUrl}/metrics`)).text();
    assert.match(metrics, /hearth_frames_in_total\{[^}]*fetch[^}]*\} \d+/);
    s.close();
  } finally {
    await guarded.cleanup();
  }
});
