// Presence handles (issue 31) against the real server: avatars' data, re-announced after a
// reconnect, ended by a client process killed with SIGKILL.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import WebSocket from "ws";

import { connect } from "../src/index.js";
import { serverSuite, startServer, until } from "./server.js";

const FAST = { min: 50, max: 300, factor: 2 };
const suite = serverSuite({ before, after }, { reconnect: FAST });
const client = (options) => suite.client(options);

const names = (list) => list.map((p) => p.username);

test("presence: join, state, two connections, leave, and the list everyone sees", async () => {
  const ann = client();
  const { username: annName } = await ann.signup();
  const bob = client();
  const { username: bobName, token: bobToken } = await bob.signup();
  await ann.create("notes", { collaborators: [bobName] });
  const key = `${annName}/notes`;

  const mine = ann.presence(key, { typing: false });
  const seen = [];
  mine.on("change", (list) => seen.push(list));
  await mine.ready;
  assert.deepEqual(names(mine.list), [annName]);

  const theirs = bob.presence(key, { typing: true, field: "title" });
  await theirs.ready;
  await until(() => mine.list.length === 2, 5000, "bob seen");
  assert.deepEqual(mine.list[1].state, { typing: true, field: "title" });
  await theirs.set({ typing: false });
  await until(() => mine.list[1]?.state.typing === false, 5000, "bob's new state");

  // Bob in a second tab: one person, two connections.
  const bob2 = client({ token: bobToken });
  await until(() => bob2.ready, 5000, "second tab");
  const tab = bob2.presence(key, { typing: false });
  await tab.ready;
  await until(() => mine.list[1]?.connections === 2, 5000, "two connections");
  await tab.leave();
  await until(() => mine.list[1]?.connections === 1, 5000, "back to one");
  await theirs.leave();
  await until(() => mine.list.length === 1, 5000, "bob gone");
  assert.ok(seen.length >= 5, "each change told");
});

test("presence is announced again after a reconnect", async () => {
  let own = await startServer();
  const a = connect(own.url, { WebSocket, requestTimeout: 5000, reconnect: FAST });
  const b = connect(own.url, { WebSocket, requestTimeout: 5000, reconnect: FAST });
  try {
    const { token } = await a.signup();
    await b.auth(token);
    const here = a.presence(undefined, { where: "a" });
    const watcher = b.presence(undefined, null);
    await Promise.all([here.ready, watcher.ready]);
    await until(() => watcher.list.length === 1, 5000, "a seen");
    own = await own.restart();
    await until(() => a.ready && b.ready, 10_000, "both back");
    await until(() => watcher.list.length === 1 && watcher.list[0].state.where === "a", 10_000, "a announced again");
  } finally {
    a.close();
    b.close();
    await own.cleanup();
  }
});

test("a client process killed with SIGKILL is gone from everyone's list", async () => {
  const ann = client();
  const { username, token } = await ann.signup();
  const list = ann.presence(undefined, { me: "watching" });
  await list.ready;
  const script = `
    import { connect } from ${JSON.stringify(new URL("../src/index.js", import.meta.url).href)};
    import WebSocket from ${JSON.stringify(import.meta.resolve("ws"))};
    const c = connect(${JSON.stringify(suite.server.url)}, { WebSocket, token: ${JSON.stringify(token)} });
    const p = c.presence(undefined, { me: "doomed" });
    await p.ready;
    console.log("present");
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => String(d).includes("present") && resolve());
    child.on("exit", (code) => reject(new Error(`child exited ${code}`)));
  });
  await until(() => list.list[0]?.connections === 2, 5000, "the child present");
  child.kill("SIGKILL");
  await until(() => list.list[0]?.connections === 1, 5000, "the child gone");
  assert.deepEqual(list.list[0].state, { me: "watching" });
  assert.equal(list.list[0].username, username);
});

test("leaving a presence never ends the app's own watch of the document", async () => {
  const ann = client();
  const { username } = await ann.signup();
  const here = ann.presence(username, { on: true });
  await here.ready;
  // The app watches the same document after the handle did (its watch replaces the handle's).
  const seen = [];
  await ann.watch(username, {}, (c) => seen.push(c.version)).ready;
  await here.leave();
  await ann.update({ n: 1 }, 0, "merge");
  await until(() => seen.includes(1), 5000, "the app's watch still delivers");
});


test("a push that overtakes the list it came after is kept (the server's seq orders them)", async () => {
  const { PresenceHandle } = await import("../src/presence.js");
  let answer;
  const fake = {
    _watching: () => true,
    _watchReady: async () => {},
    _request: () => new Promise((resolve) => (answer = resolve)),
  };
  const handle = new PresenceHandle(fake, "ann", null);
  await until(() => answer, 1000, "the list asked for");
  const person = (username, since) => ({ username, connections: 1, state: {}, since });
  // Cat joined (seq 3) after the list was taken (seq 2), and her push came first.
  handle._pushed({ event: "join", user: "cat", seq: 3, connections: 1, state: {}, since: "c" });
  // Bob's join (seq 2) was already in the list: arriving before it, it changes nothing.
  handle._pushed({ event: "join", user: "bob", seq: 2, connections: 1, state: {}, since: "b" });
  answer({ present: [person("ann", "a"), person("bob", "b")], seq: 2 });
  await handle.ready;
  assert.deepEqual(names(handle.list), ["ann", "bob", "cat"]);
  // A push the list already held (seq ≤ 2) is not applied twice; a leave after it is.
  handle._pushed({ event: "leave", user: "bob", seq: 2 });
  assert.deepEqual(names(handle.list), ["ann", "bob", "cat"]);
  handle._pushed({ event: "leave", user: "bob", seq: 4 });
  assert.deepEqual(names(handle.list), ["ann", "cat"]);
});
