// The demo page in headless Chromium (Debian's, driven by playwright-core): two people, one
// shares with the other, an edit in one window appears in the other without a reload.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { browserSuite } from "../test/server.js";

const suite = browserSuite(chromium, { before, after });
const ARTIFACTS = suite.artifacts;
const person = () => suite.guest({ screenshot: "demo-welcome.png" });

test("an edit in one browser appears live in another", async () => {
  const ann = await person();
  const bob = await person();
  assert.notEqual(ann.username, bob.username);

  // Ann shares her document with Bob.
  await ann.page.fill('form[data-list="collaborators"] input', bob.username);
  await ann.page.click('form[data-list="collaborators"] button');
  await ann.page.waitForSelector(`#collaborators li:has-text("${bob.username}")`);

  // Bob watches it.
  await bob.page.fill("#watch-target", ann.username);
  await bob.page.click("#watch-form button");
  await bob.page.waitForSelector("#watched:not([hidden])");

  // Ann edits and saves; Bob sees it without reloading.
  await ann.page.fill("#editor", JSON.stringify({ groceries: { milk: 2, eggs: 12 }, note: "from Ann" }, null, 2));
  await ann.page.click("#save");
  await ann.page.waitForSelector('#save-status:has-text("Saved as v2")');
  await bob.page.waitForFunction(() => document.getElementById("watched").textContent.includes('"eggs": 12'));
  assert.match(await bob.page.textContent("#watched-version"), /v2/);

  // A merge patch from Ann arrives too, and shows in Bob's feed.
  await ann.page.selectOption("#mode", "merge");
  await ann.page.fill("#editor", '{"groceries": {"eggs": null, "bread": 1}}');
  await ann.page.click("#save");
  await bob.page.waitForFunction(() => document.getElementById("watched").textContent.includes('"bread": 1'));
  assert.doesNotMatch(await bob.page.textContent("#watched"), /eggs/);
  assert.match(await bob.page.textContent("#feed"), /merge/);
  assert.match(await ann.page.inputValue("#editor"), /"bread": 1/);

  // Ann attaches a picture: it shows in her document and, through it, in Bob's view.
  const picture = `<svg xmlns="http://www.w3.org/2000/svg" width="160" height="100"><rect width="160" height="100" rx="10" fill="#4c6ef5"/><text x="80" y="62" font-size="34" text-anchor="middle" fill="#fff" font-family="sans-serif">hearth</text></svg>`;
  await ann.page.setInputFiles("#attach", { name: "kitchen.svg", mimeType: "image/svg+xml", buffer: Buffer.from(picture) });
  await ann.page.waitForSelector('#files img[alt="kitchen.svg"]');
  await bob.page.waitForSelector('#watched-files img[alt="kitchen.svg"]');
  assert.match(await ann.page.textContent("#save-status"), /Attached kitchen\.svg/);

  await ann.page.screenshot({ path: `${ARTIFACTS}demo-ann.png`, fullPage: true });
  await bob.page.screenshot({ path: `${ARTIFACTS}demo-bob.png`, fullPage: true });

  // Ann removes Bob: his live view ends at once.
  await ann.page.click(`#collaborators li:has-text("${bob.username}") button`);
  await bob.page.waitForSelector('#watch-error:has-text("revoked")');
  await bob.page.screenshot({ path: `${ARTIFACTS}demo-bob-revoked.png`, fullPage: true });

  assert.deepEqual(ann.errors, []);
  assert.deepEqual(bob.errors, []);
});

test("a stale edit is never saved without a word, and unknown names are named", async () => {
  // One person, two tabs (one browser context: the same stored token).
  const context = await suite.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const first = await context.newPage();
  const errors = [];
  first.on("pageerror", (e) => errors.push(e));
  await first.goto(suite.server.httpUrl);
  await first.click("#guest");
  await first.waitForSelector("#status.online");
  await first.waitForFunction(() => document.getElementById("me").textContent.length > 0);
  const second = await context.newPage();
  second.on("pageerror", (e) => errors.push(e));
  await second.goto(suite.server.httpUrl);
  await second.waitForSelector("#status.online");
  await second.waitForFunction(() => document.getElementById("version").textContent === "v0");

  // The first tab starts editing v0; the second saves v1 meanwhile.
  await first.fill("#editor", JSON.stringify({ list: ["milk"], note: "first tab" }, null, 2));
  await second.fill("#editor", JSON.stringify({ list: ["eggs"], owner: "second tab" }, null, 2));
  await second.click("#save");
  await second.waitForSelector('#save-status:has-text("Saved as v1")');

  // The first tab is told at once, before it saves.
  await first.waitForSelector("#conflict:not([hidden])");
  assert.match(await first.textContent("#conflict-text"), /v1 was saved by you, in another tab/);
  await first.screenshot({ path: `${ARTIFACTS}demo-conflict.png`, fullPage: true });

  // Saving anyway is refused (the write is at v0), not silently applied over v1.
  await first.click("#save");
  await first.waitForSelector('#conflict-text:has-text("nothing was written")');
  assert.match(await second.inputValue("#editor"), /second tab/);

  // Merging keeps the second tab's key and applies the first tab's changes on top.
  await first.click("#conflict-merge");
  await first.waitForSelector('#save-status:has-text("Merged your edits into v2")');
  await first.waitForSelector("#conflict", { state: "hidden" });
  await second.waitForFunction(() => document.getElementById("version").textContent === "v2");
  const merged = JSON.parse(await second.inputValue("#editor"));
  assert.deepEqual(merged, { list: ["milk"], note: "first tab", owner: "second tab" });

  // Sharing with a name nobody has: the page says which.
  await first.fill('form[data-list="readers"] input', "typo-friend-92157");
  await first.click('form[data-list="readers"] button');
  await first.waitForSelector('#share-error:has-text("No account named typo-friend-92157")');
  assert.equal(await first.inputValue('form[data-list="readers"] input'), "typo-friend-92157", "kept for fixing");
  await first.screenshot({ path: `${ARTIFACTS}demo-unknown-name.png`, fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test("a named document shared with one person shows in their sidebar live", async () => {
  const ann = await person();
  const bob = await person();

  // Ann creates "groceries"; it opens, and her sidebar lists it.
  await ann.page.fill("#create-name", "groceries");
  await ann.page.click("#create-form button");
  await ann.page.waitForSelector('#doc-title:has-text("groceries")');
  await ann.page.waitForSelector('#my-docs button[aria-current="true"]:has-text("groceries")');
  await ann.page.fill("#editor", JSON.stringify({ milk: 1 }, null, 2));
  await ann.page.click("#save");
  await ann.page.waitForSelector('#save-status:has-text("Saved as v1")');

  // She shares only that one with Bob: his sidebar shows it without a reload.
  await ann.page.fill('form[data-list="collaborators"] input', bob.username);
  await ann.page.click('form[data-list="collaborators"] button');
  await ann.page.waitForSelector(`#collaborators li:has-text("${bob.username}")`);
  const key = `${ann.username}/groceries`;
  await bob.page.waitForSelector(`#shared-docs button:has-text("${key}")`);
  assert.match(await bob.page.textContent("#shared-docs"), /can edit/);

  // Bob opens it and edits; Ann sees his edit in her open document.
  await bob.page.click(`#shared-docs button:has-text("${key}")`);
  await bob.page.waitForFunction(() => document.getElementById("editor").value.includes('"milk": 1'));
  assert.equal(await bob.page.isHidden("#share-card"), true, "sharing is the owner's");
  await bob.page.fill("#editor", JSON.stringify({ milk: 1, eggs: 12 }, null, 2));
  await bob.page.click("#save");
  await bob.page.waitForSelector('#save-status:has-text("Saved as v3")');
  await ann.page.waitForFunction(() => document.getElementById("editor").value.includes('"eggs": 12'));
  assert.match(await ann.page.textContent("#last-update"), new RegExp(`saved by ${bob.username}`));
  // Ann's default document is untouched and private.
  await ann.page.screenshot({ path: `${ARTIFACTS}demo-named-ann.png`, fullPage: true });
  await bob.page.screenshot({ path: `${ARTIFACTS}demo-named-bob.png`, fullPage: true });

  // Ann deletes it: it leaves Bob's sidebar and his open view says so.
  ann.page.once("dialog", (d) => d.accept());
  await ann.page.click("#delete-doc");
  await bob.page.waitForSelector(`#doc-error:has-text("${key}")`);
  await bob.page.waitForFunction(() => !document.getElementById("shared-docs").textContent.includes("groceries"));
  await bob.page.screenshot({ path: `${ARTIFACTS}demo-named-deleted.png`, fullPage: true });
  assert.deepEqual(ann.errors, []);
  assert.deepEqual(bob.errors, []);
});
