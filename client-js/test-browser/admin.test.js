// The admin dashboard (issue 33, first part) in Chromium: an admin signs in, sees the
// overview, finds a user by search, disables and re-enables them (their open socket closes);
// a non-admin gets no dashboard and no data. Screenshots of each screen in light and dark.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";
import WebSocket from "ws";

import { connect } from "../src/index.js";
import { browserSuite, startServer } from "../test/server.js";

const BIN = process.env.HEARTH_BIN ?? fileURLToPath(new URL("../../target/debug/hearth", import.meta.url));

/** A server whose admin, "boss", was made as an operator makes one: `hearth user create`
 * on the data dir before the server starts. */
async function withAdmin() {
  const dataDir = await mkdtemp(join(tmpdir(), "hearth-admin-"));
  const made = spawnSync(BIN, ["user", "create", "boss", "--password-stdin"], {
    env: { ...process.env, DATA_DIR: dataDir, ADMIN_USERS: "boss" },
    input: "correct horse\n",
  });
  assert.equal(made.status, 0, String(made.stderr));
  return startServer({ dataDir, env: { ADMIN_USERS: "boss" } });
}

const suite = browserSuite(chromium, { before, after, server: withAdmin });

async function signup(username) {
  const res = await fetch(`${suite.server.httpUrl}/v1/signup`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password: "correct horse" }),
  });
  return res.json();
}

async function page(colorScheme, viewport = { width: 1200, height: 820 }) {
  const context = await suite.browser.newContext({ viewport, colorScheme });
  const p = await context.newPage();
  const errors = [];
  p.on("pageerror", (e) => errors.push(e));
  p.on("dialog", (d) => d.accept());
  return { context, page: p, errors };
}

async function signIn(p, username) {
  await p.goto(`${suite.server.httpUrl}/admin`);
  await p.fill("#username", username);
  await p.fill("#password", "correct horse");
  await p.click("#signin-form button");
}

test("a non-admin gets no dashboard and no data", async () => {
  await signup("ann");
  for (const scheme of ["light", "dark"]) {
    const { context, page: p, errors } = await page(scheme);
    await signIn(p, "ann");
    await p.waitForSelector('#signin-error:has-text("not an admin")');
    assert.equal(await p.isHidden("#overview"), true);
    assert.equal(await p.textContent("#counters"), "", "no data shown");
    await p.screenshot({ path: `${suite.artifacts}admin-refused-${scheme}.png` });
    assert.deepEqual(errors, []);
    await context.close();
  }
});

test("an admin sees the overview, finds a user, and disables and enables them", async () => {
  const { token } = await signup("carol");
  await signup("dave");
  // Carol is online: disabling her closes her socket.
  const carol = connect(suite.server.url, { WebSocket, token, reconnect: false });
  const closed = new Promise((resolve) => carol.on("disconnected", resolve));
  await carol.watch(() => {}).ready;

  for (const scheme of ["light", "dark"]) {
    const { context, page: p, errors } = await page(scheme);
    await signIn(p, "boss");
    await p.waitForSelector("#overview:not([hidden])");
    await p.waitForSelector("#ready.ok");
    assert.match(await p.textContent("#node"), /node [0-9a-f]{16} · redb/);
    assert.match(await p.textContent("#counters"), /Users\s*4/);
    assert.equal(await p.locator("#charts svg").count(), 6);
    await p.screenshot({ path: `${suite.artifacts}admin-overview-${scheme}.png`, fullPage: true });

    await p.click('#tabs a[data-tab="users"]');
    await p.waitForSelector('#user-rows tr:has-text("carol")');
    await p.fill("#search", "car");
    assert.equal(await p.locator("#user-rows tr").count(), 1, "the search narrows the list");
    if (scheme === "light") {
      await p.click('#user-rows button[data-user="carol"][data-action="disable"]');
      await closed; // her socket was closed by the server
      await p.waitForSelector('#user-rows tr:has-text("carol") .tag.off');
      await p.screenshot({ path: `${suite.artifacts}admin-users-disabled.png`, fullPage: true });
      await p.click('#user-rows button[data-user="carol"][data-action="enable"]');
      await p.waitForFunction(() => !document.querySelector("#user-rows .tag.off"));
    }
    await p.fill("#search", "");
    await p.screenshot({ path: `${suite.artifacts}admin-users-${scheme}.png`, fullPage: true });
    assert.deepEqual(errors, []);
    await context.close();
  }
  // Operations: the settings in force (no secret shown), and a backup downloaded with its
  // progress.
  for (const scheme of ["light", "dark"]) {
    const { context, page: p, errors } = await page(scheme);
    await signIn(p, "boss");
    await p.waitForSelector("#overview:not([hidden])");
    await p.click('#tabs a[data-tab="operations"]');
    await p.waitForSelector('#settings-rows tr:has-text("ADMIN_USERS")');
    assert.match(await p.textContent("#settings-rows"), /MAX_WATCHES\s*100/);
    if (scheme === "light") {
      const download = p.waitForEvent("download");
      await p.click("#backup");
      const file = await download;
      await p.waitForSelector('#backup-status:has-text("Done")');
      assert.match(file.suggestedFilename(), /^hearth-backup-.*\.redb$/);
      const path = await file.path();
      const { statSync } = await import("node:fs");
      assert.ok(statSync(path).size > 4096, "a whole data file");
      assert.equal(await p.getAttribute("#backup-progress", "value"), "1");
    }
    await p.screenshot({ path: `${suite.artifacts}admin-operations-${scheme}.png`, fullPage: true });
    assert.deepEqual(errors, []);
    await context.close();
  }
  // Dave is deleted from the list (after confirming).
  {
    const { context, page: p } = await page("light");
    await signIn(p, "boss");
    await p.click('#tabs a[data-tab="users"]');
    await p.click('#user-rows button[data-user="dave"][data-action="delete"]');
    await p.waitForFunction(() => !document.querySelector('#user-rows button[data-user="dave"]'));
    await context.close();
  }
  // The audit log shows what was done, by whom.
  for (const scheme of ["light", "dark"]) {
    const { context, page: p, errors } = await page(scheme);
    await signIn(p, "boss");
    await p.waitForSelector("#overview:not([hidden])");
    await p.click('#tabs a[data-tab="audit"]');
    await p.waitForSelector('#audit-rows tr[data-action="disable"]:has-text("carol")');
    const actions = await p.$$eval("#audit-rows tr", (trs) => trs.map((tr) => tr.dataset.action));
    assert.deepEqual(actions, ["delete_user", "backup_download", "enable", "disable"], "newest first");
    assert.match(await p.textContent("#audit-rows"), /boss/);
    await p.screenshot({ path: `${suite.artifacts}admin-audit-${scheme}.png`, fullPage: true });
    assert.deepEqual(errors, []);
    await context.close();
  }
  // Readable on a phone.
  const { context, page: phone } = await page("light", { width: 390, height: 844 });
  await signIn(phone, "boss");
  await phone.waitForSelector("#overview:not([hidden])");
  await phone.screenshot({ path: `${suite.artifacts}admin-overview-phone.png`, fullPage: true });
  await context.close();
  carol.close();
});
