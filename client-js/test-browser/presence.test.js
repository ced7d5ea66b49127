// Presence in the demo page (issue 31): two people on one document see each other's face,
// and "typing…" while the other edits.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { browserSuite } from "../test/server.js";

const suite = browserSuite(chromium, { before, after });
const ARTIFACTS = suite.artifacts;
const person = () => suite.guest();

const faces = (page) => page.$$eval("#present li", (lis) => lis.map((li) => li.title));

test("two people on one document see each other, and who is typing", async () => {
  const ann = await person();
  const bob = await person();
  // Alone on her own document: only her face.
  await ann.page.waitForSelector("#present li");
  assert.deepEqual(await faces(ann.page), ["you"]);

  await ann.page.fill("#create-name", "groceries");
  await ann.page.click("#create-form button");
  await ann.page.waitForSelector('#doc-title:has-text("groceries")');
  await ann.page.fill('form[data-list="collaborators"] input', bob.username);
  await ann.page.click('form[data-list="collaborators"] button');
  await ann.page.waitForSelector(`#collaborators li:has-text("${bob.username}")`);
  const key = `${ann.username}/groceries`;
  await bob.page.waitForSelector(`#shared-docs button:has-text("${key}")`);
  await bob.page.click(`#shared-docs button:has-text("${key}")`);

  // Each sees the other's face.
  await ann.page.waitForFunction((name) => [...document.querySelectorAll("#present li")].some((li) => li.title === name), bob.username);
  await bob.page.waitForFunction((name) => [...document.querySelectorAll("#present li")].some((li) => li.title === name), ann.username);

  // Bob types: Ann sees it while he does, and not a moment long after.
  await bob.page.click("#editor");
  await bob.page.keyboard.type('{"milk": 2', { delay: 30 });
  await ann.page.waitForSelector(`#present .typing:has-text("${bob.username} is typing")`);
  await ann.page.screenshot({ path: `${ARTIFACTS}presence-ann.png`, fullPage: true });
  await bob.page.screenshot({ path: `${ARTIFACTS}presence-bob.png`, fullPage: true });
  await ann.page.waitForSelector("#present .typing", { state: "detached", timeout: 5000 });

  // Bob closes his window: his face goes from Ann's.
  await bob.context.close();
  await ann.page.waitForFunction((name) => ![...document.querySelectorAll("#present li")].some((li) => li.title === name), bob.username);
  assert.deepEqual(await faces(ann.page), ["you"]);
  assert.deepEqual(ann.errors, []);
  assert.deepEqual(bob.errors, []);
});
