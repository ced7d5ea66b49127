// Offline first in the demo page (issue 30): edits made with the network off are kept across
// a reload, sent once when it is back, and reach the other person's window.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { browserSuite } from "../test/server.js";

const suite = browserSuite(chromium, { before, after });
const ARTIFACTS = suite.artifacts;
const person = () => suite.guest();

async function edit(page, userdata) {
  await page.fill("#editor", JSON.stringify(userdata, null, 2));
  await page.click("#save");
}

test("edits made offline survive a reload and reach the other person once back online", async () => {
  const ann = await person();
  const bob = await person();
  await ann.page.fill('form[data-list="readers"] input', bob.username);
  await ann.page.click('form[data-list="readers"] button');
  await ann.page.waitForSelector(`#readers li:has-text("${bob.username}")`);
  await bob.page.fill("#watch-target", ann.username);
  await bob.page.click("#watch-form button");
  await bob.page.waitForSelector("#watched:not([hidden])");
  // The service worker holds the page before the network goes.
  await ann.page.waitForFunction(() => navigator.serviceWorker.controller !== null);

  await ann.context.setOffline(true);
  await ann.page.waitForSelector("#status.offline");
  const lists = [{ milk: 1 }, { milk: 1, eggs: 6 }, { milk: 1, eggs: 6, tea: true }];
  for (const [i, list] of lists.entries()) {
    await edit(ann.page, { list });
    await ann.page.waitForSelector(`#status:has-text("${i + 1} change${i ? "s" : ""} waiting")`);
  }
  assert.match(await ann.page.textContent("#save-status"), /Saved on this device/);
  assert.match(await ann.page.inputValue("#editor"), /"tea": true/, "shown at once");
  await ann.page.screenshot({ path: `${ARTIFACTS}offline-pending.png`, fullPage: true });

  // Reloaded while still offline: the page, the document and the three edits are there.
  await ann.page.reload();
  await ann.page.waitForSelector('#status:has-text("3 changes waiting")');
  await ann.page.waitForFunction(() => document.getElementById("editor").value.includes('"tea": true'));
  await edit(ann.page, { list: { milk: 2, eggs: 6, tea: true }, note: "after the reload" });
  await ann.page.waitForSelector('#status:has-text("4 changes waiting")');
  await ann.page.screenshot({ path: `${ARTIFACTS}offline-reloaded.png`, fullPage: true });
  assert.ok(!(await bob.page.textContent("#watched")).includes("tea"), "nothing sent while offline");

  // Back online: sent, once each and in order, and Bob's window shows the result.
  await ann.context.setOffline(false);
  await ann.page.waitForSelector('#status.online:has-text("live")');
  await ann.page.waitForSelector('#save-status:has-text("synced")');
  await bob.page.waitForFunction(() => document.getElementById("watched").textContent.includes("after the reload"));
  assert.match(await bob.page.textContent("#watched-version"), /v5/);
  const token = await ann.page.evaluate(() => localStorage.getItem("hearth.token"));
  const res = await fetch(`${suite.server.httpUrl}/v1/users/${ann.username}/changes?from=1`, { headers: { Authorization: `Bearer ${token}` } });
  const { changes } = await res.json();
  assert.deepEqual(changes.map((c) => c.version), [1, 2, 3, 4, 5]);
  assert.equal(new Set(changes.map((c) => c.opId)).size, 5, "each write once, each with its id");
  assert.deepEqual(changes.slice(1).map((c) => c.op.replace.list), [...lists, { milk: 2, eggs: 6, tea: true }]);
  await ann.page.screenshot({ path: `${ARTIFACTS}offline-synced-ann.png`, fullPage: true });
  await bob.page.screenshot({ path: `${ARTIFACTS}offline-synced-bob.png`, fullPage: true });
  assert.deepEqual(ann.errors, []);
  assert.deepEqual(bob.errors, []);
});
