// Streams from client-js (issue 32): append (created by the owner's first one), read ranges,
// follow from a place with no gap or duplicate across a server restart.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { serverSuite, until } from "./server.js";

const FAST = { min: 50, max: 300, factor: 2 };
const suite = serverSuite({ before, after }, { reconnect: FAST });
const client = (options) => suite.client(options);

test("append, read and follow a stream, across a restart", async () => {
  const ann = client();
  const { username } = await ann.signup();
  const first = await ann.append("activity", { did: "wake" }, { opId: "a-1" });
  assert.equal(first.seq, 1);
  assert.match(first.id, /^[0-9a-f]{64}$/);
  // A retry with the same opId is the same event.
  assert.deepEqual(await ann.append("activity", { did: "wake" }, { opId: "a-1" }), first);
  for (let i = 2; i <= 5; i++) await ann.append(`${username}/activity`, { n: i });

  const page = await ann.read("activity", { from: first.id, limit: 2 });
  assert.deepEqual(page.events.map((e) => e.seq), [2, 3]);
  assert.equal(page.next, 3);
  assert.equal(page.seq, 5);
  assert.equal(page.events[0].by, username);

  // Following from seq 3: 4 and 5 first, then new ones; once each, through a restart.
  const seen = [];
  const stop = ann.follow("activity", (e) => seen.push(e.seq), { from: 3 });
  await stop.ready;
  await until(() => seen.length === 2);
  await ann.append("activity", { n: 6 });
  await until(() => seen.length === 3);
  suite.server = await suite.server.restart();
  await until(() => ann.ready, 10000);
  await ann.append("activity", { n: 7 });
  await until(() => seen.length === 4, 10000);
  assert.deepEqual(seen, [4, 5, 6, 7]);
  stop();

  // From the first event: everything, in order.
  const all = [];
  const again = ann.follow("activity", (e) => all.push(e.event), { from: 0 });
  await again.ready;
  await until(() => all.length === 7);
  assert.deepEqual(all[0], { did: "wake" });
  again();
});
