// The admin dashboard (issue 33) in Chromium: an admin signs in, sees the overview, finds a
// user by search, disables and re-enables them (their open socket closes), opens their page
// and a document of theirs, sees a change arrive live and edits it; takes a backup and
// downloads it; a non-admin gets no dashboard and no data. Screenshots of each screen in
// light and dark.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer } from "node:http";
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
  // Webhooks may reach the test's receiver on loopback, and a failing one pauses quickly.
  return startServer({ dataDir, env: { ADMIN_USERS: "boss", WEBHOOK_ALLOW_PRIVATE: "1", WEBHOOK_RETRY_MS: "5" } });
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
  // Carol is online (a plain socket, to read its close code): disabling her closes it, 4003.
  const carol = new WebSocket(suite.server.url);
  await new Promise((resolve) => carol.once("open", resolve));
  const signedIn = new Promise((resolve) => carol.once("message", resolve));
  carol.send(JSON.stringify({ type: "auth", token }));
  assert.equal(JSON.parse(String(await signedIn)).type, "auth");
  const closed = new Promise((resolve) => carol.on("close", (code) => resolve(code)));

  for (const scheme of ["light", "dark"]) {
    const { context, page: p, errors } = await page(scheme);
    await signIn(p, "boss");
    await p.waitForSelector("#overview:not([hidden])");
    await p.waitForSelector("#ready.ok");
    assert.match(await p.textContent("#node"), /node [0-9a-f]{16} · redb/);
    assert.match(await p.textContent("#counters"), /Users\s*4/);
    assert.equal(await p.locator("#charts svg").count(), 7);
    await p.waitForSelector('[data-chart="errorsByCode"]');
    await p.screenshot({ path: `${suite.artifacts}admin-overview-${scheme}.png`, fullPage: true });

    await p.click('#tabs a[data-tab="users"]');
    await p.waitForSelector('#user-rows tr:has-text("carol")');
    // `/` jumps to the search, which asks the server (every account, not this page).
    await p.keyboard.press("/");
    await p.keyboard.type("car");
    await p.waitForFunction(() => document.querySelectorAll("#user-rows tr").length === 1);
    assert.match(await p.textContent("#page-info"), /1–1 of 1 matching/);
    if (scheme === "light") {
      await p.click('#user-rows button[data-user="carol"][data-action="disable"]');
      assert.equal(await closed, 4003, "her socket was closed by the server: account disabled");
      await p.waitForSelector('#user-rows tr:has-text("carol") .tag.off');
      await p.screenshot({ path: `${suite.artifacts}admin-users-disabled.png`, fullPage: true });
      await p.click('#user-rows button[data-user="carol"][data-action="enable"]');
      await p.waitForFunction(() => !document.querySelector("#user-rows .tag.off"));
    }
    await p.fill("#search", "");
    await p.waitForSelector('#user-rows tr:has-text("dave")');
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

test("an admin opens a user and their document, sees a change arrive live, and edits it", async () => {
  const { token } = await signup("erin");
  const erin = connect(suite.server.url, { WebSocket, token, reconnect: false });
  const seen = [];
  await erin.watch((change) => seen.push(change)).ready;
  const v1 = await erin.update({ groceries: ["milk", "eggs"], note: "weekly" }, 0, true);

  for (const scheme of ["light", "dark"]) {
    const { context, page: p, errors } = await page(scheme);
    await signIn(p, "boss");
    await p.waitForSelector("#overview:not([hidden])");
    await p.click('#tabs a[data-tab="users"]');
    await p.fill("#search", "erin");
    await p.click('#user-rows a.user-link:has-text("erin")');
    await p.waitForSelector("#user:not([hidden])");
    await p.waitForSelector('#user-docs a:has-text("(default document)")');
    assert.match(await p.textContent("#user-sessions"), /1 open/, "her socket, on this node");
    assert.match(await p.textContent("#user-blobs"), /0 B/);
    await p.screenshot({ path: `${suite.artifacts}admin-user-${scheme}.png`, fullPage: true });

    // Her document: its data, version, lists and log, then live.
    await p.click('#user-docs a:has-text("(default document)")');
    await p.waitForSelector("#doc-view:not([hidden])");
    await p.waitForSelector("#doc-live.ok");
    assert.match(await p.textContent("#json"), /groceries/);
    await p.fill("#json-search", "milk");
    assert.equal(await p.textContent("#json-hits"), "1 match");
    const before = Number((await p.textContent("#doc-version")).slice(1));
    await erin.update({ note: `changed while ${scheme}` }, before, true);
    await p.waitForSelector(`#log-rows tr[data-version="${before + 1}"]`);
    assert.match(await p.textContent("#json"), new RegExp(`changed while ${scheme}`), "the view follows");
    assert.equal(await p.textContent("#doc-version"), `v${before + 1}`);
    await p.screenshot({ path: `${suite.artifacts}admin-data-${scheme}.png`, fullPage: true });

    if (scheme === "light") {
      // An edit is a versioned update by boss: erin's watch gets it; the log says who.
      await p.click("#doc-edit");
      await p.fill("#doc-text", JSON.stringify({ groceries: ["milk"], note: "fixed by the admin" }));
      await p.screenshot({ path: `${suite.artifacts}admin-data-edit.png`, fullPage: true });
      await p.click("#doc-save");
      await p.waitForSelector(`#log-rows tr[data-version="${before + 2}"]:has-text("boss")`);
      await p.waitForFunction(() => document.querySelector("#json").textContent.includes("fixed by the admin"));
      const last = () => seen.at(-1);
      for (let i = 0; i < 50 && last()?.version !== before + 2; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(last().version, before + 2);
      assert.equal(last().data.userdata.note, "fixed by the admin");
      assert.equal(last().by, "boss");
      // A stale edit is refused and the text kept.
      await erin.update({ note: "erin again" }, before + 2, true);
      await p.waitForSelector(`#log-rows tr[data-version="${before + 3}"]`);
      await p.click("#doc-edit");
      await erin.update({ note: "erin once more" }, before + 3, true);
      await p.fill("#doc-text", JSON.stringify({ note: "too late" }));
      await p.click("#doc-save");
      await p.waitForSelector('#edit-error:has-text("Someone changed it")');
      assert.equal(await p.inputValue("#doc-text"), JSON.stringify({ note: "too late" }));
      await p.click("#doc-cancel");
    }
    assert.deepEqual(errors, []);
    await context.close();
  }
  assert.ok(v1 >= 1);

  // Operations: the kept snapshots (one taken into the directory) and recent problems.
  const boss = await (await fetch(`${suite.server.httpUrl}/v1/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "boss", password: "correct horse" }),
  })).json();
  const taken = await fetch(`${suite.server.httpUrl}/v1/admin/backup`, { method: "POST", headers: { Authorization: `Bearer ${boss.token}` } });
  assert.equal(taken.status, 200);
  for (const scheme of ["light", "dark"]) {
    const { context, page: p, errors } = await page(scheme);
    await signIn(p, "boss");
    await p.waitForSelector("#overview:not([hidden])");
    await p.click('#tabs a[data-tab="operations"]');
    await p.waitForSelector('#backup-rows tr:has-text("manual")');
    assert.match(await p.textContent("#schedule"), /None scheduled/);
    await p.waitForSelector("#log-lines tr");
    if (scheme === "light") {
      const download = p.waitForEvent("download");
      await p.click("#backup-rows button");
      const file = await download;
      assert.match(file.suggestedFilename(), /^manual-.*\.redb$/);
      await p.waitForSelector('#backup-status:has-text("Done")');
    }
    await p.screenshot({ path: `${suite.artifacts}admin-operations-kept-${scheme}.png`, fullPage: true });
    assert.deepEqual(errors, []);
    await context.close();
  }

  // Every look at erin's data is in the audit log.
  const audit = await (await fetch(`${suite.server.httpUrl}/v1/admin/audit?limit=100`, { headers: { Authorization: `Bearer ${boss.token}` } })).json();
  const onErin = audit.lines.filter((l) => l.target === "erin").map((l) => l.action);
  for (const action of ["read_document", "read_changes", "watch_document", "edit_document"]) assert.ok(onErin.includes(action), `${action} in ${onErin}`);
  erin.close();
});

test("an admin sees every webhook, removes a failing one, adds a global one, and follows the feed", async () => {
  // A receiver on loopback that keeps what it is sent.
  const got = [];
  const receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      got.push(JSON.parse(body));
      res.end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
  const { token } = await signup("fern");
  const call = (method, path, body) =>
    fetch(`${suite.server.httpUrl}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body && JSON.stringify(body),
    });
  assert.equal((await call("POST", "/v1/me/webhooks", { url: hookUrl })).status, 201);
  // Nobody listens on port 9: eight failures in a row pause it.
  assert.equal((await call("POST", "/v1/me/webhooks", { url: "http://127.0.0.1:9/gone" })).status, 201);
  assert.ok((await call("PUT", "/v1/users/fern/data/plants", ["fern", "moss"])).ok);
  for (let i = 0; i < 100 && !got.some((g) => g.username === "fern"); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(got.some((g) => g.username === "fern"), "her webhook delivered");

  for (const scheme of ["light", "dark"]) {
    const { context, page: p, errors } = await page(scheme);
    await signIn(p, "boss");
    await p.waitForSelector("#overview:not([hidden])");
    await p.click('#tabs a[data-tab="integrations"]');
    await p.waitForSelector(`#hook-rows tr:has-text("${hookUrl}") .pill.ok`);
    // The failing one shows why it stopped (the page is reloaded until it has).
    for (let i = 0; i < 50 && !(await p.$('#hook-rows tr:has-text("127.0.0.1:9") .pill:has-text("paused")')); i++) {
      await new Promise((r) => setTimeout(r, 100));
      await p.click('#tabs a[data-tab="overview"]');
      await p.click('#tabs a[data-tab="integrations"]');
    }
    await p.waitForSelector('#hook-rows tr:has-text("127.0.0.1:9") .pill:has-text("paused")');
    assert.match(await p.textContent('#hook-rows tr:has-text("127.0.0.1:9")'), /failed deliveries|127\.0\.0\.1:9/);

    // The live feed: fern's next change appears as it commits.
    await p.click("#feed-follow");
    await p.waitForSelector("#feed-live.ok");
    assert.ok((await call("PUT", "/v1/users/fern/data/light", scheme)).ok);
    await p.waitForSelector(`#feed-rows tr:has-text("fern")`);
    await p.screenshot({ path: `${suite.artifacts}admin-integrations-${scheme}.png`, fullPage: true });

    if (scheme === "dark") {
      // Remove the failing one; add a global one, whose secret is shown once.
      await p.click('#hook-rows tr:has-text("127.0.0.1:9") button:has-text("Remove")');
      await p.waitForFunction(() => !document.querySelector("#hook-rows").textContent.includes("127.0.0.1:9"));
      await p.fill("#hook-url", hookUrl);
      await p.fill("#hook-docs", "fern");
      await p.click("#hook-form button.primary");
      await p.waitForSelector("#hook-secret:not([hidden])");
      assert.match(await p.textContent("#hook-secret-value"), /^[0-9a-f]{64}$/);
      await p.waitForSelector('#hook-rows .tag:has-text("global")');
      await p.screenshot({ path: `${suite.artifacts}admin-integrations-created.png`, fullPage: true });
    }
    assert.deepEqual(errors, []);
    await context.close();
  }
  // The global webhook posts fern's next change too (so two deliveries of it).
  const before = got.length;
  assert.ok((await call("PUT", "/v1/users/fern/data/done", true)).ok);
  for (let i = 0; i < 100 && got.length < before + 2; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(got.length, before + 2, "hers and the global one");
  const boss = await (await fetch(`${suite.server.httpUrl}/v1/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "boss", password: "correct horse" }),
  })).json();
  const audit = await (await fetch(`${suite.server.httpUrl}/v1/admin/audit?limit=100`, { headers: { Authorization: `Bearer ${boss.token}` } })).json();
  const actions = audit.lines.map((l) => l.action);
  assert.ok(actions.includes("remove_webhook") && actions.includes("create_webhook"), `${actions}`);
  receiver.close();
});
