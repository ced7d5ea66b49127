// personal-backend's own demo page (public/ of personal-backend@0.1.0, from npm) against
// Hearth, in headless Chromium. The page is served at Hearth's origin, so its `io()` reaches
// Hearth's /socket.io/; its two external scripts (jQuery from a CDN, /socket.io/socket.io.js)
// are answered from npm copies, as the seed's server and the CDN would have.
import assert from "node:assert/strict";
import { mkdir, readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { launchChromium, startServer } from "../test/server.js";

const ARTIFACTS = fileURLToPath(new URL("../../artifacts/", import.meta.url));
const modules = (path) => fileURLToPath(new URL(`../node_modules/${path}`, import.meta.url));

const FILES = {
  "/": ["personal-backend/public/index.html", "text/html"],
  "/style.css": ["personal-backend/public/style.css", "text/css"],
  "/main.js": ["personal-backend/public/main.js", "text/javascript"],
  "/socket.io/socket.io.js": ["socket.io-client/dist/socket.io.js", "text/javascript"],
};

let server;
let browser;

before(async () => {
  server = await startServer();
  await mkdir(ARTIFACTS, { recursive: true });
  // The seed's page is answered by the test (route.fulfill), so Chromium cannot tell it came
  // from loopback and its Local Network Access checks block the WebSocket the page's
  // socket.io then opens to 127.0.0.1 (ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS): the
  // client stayed on long-polling. Served by a real server, page and socket share an address.
  browser = await launchChromium(chromium, ["--disable-features=LocalNetworkAccessChecks"]);
});

after(async () => {
  await browser?.close();
  await server?.cleanup();
});

/** A browser context where the seed's page and scripts are answered from npm. */
async function seedContext() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } });
  await context.route("https://code.jquery.com/**", async (route) =>
    route.fulfill({ body: await readFile(modules("jquery/dist/jquery.min.js")), contentType: "text/javascript" }),
  );
  await context.route(`${server.httpUrl}/**`, async (route) => {
    const path = new URL(route.request().url()).pathname;
    const file = route.request().method() === "GET" ? FILES[path] : undefined;
    if (!file) return route.continue(); // Engine.IO's own requests go to Hearth
    return route.fulfill({ body: await readFile(modules(file[0])), contentType: file[1] });
  });
  return context;
}

async function open(context) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  // What Engine.IO's upgrade to a WebSocket says, and whether that socket closed.
  const upgrade = { frames: [], closed: false };
  page.on("websocket", (ws) => {
    if (!ws.url().includes("/socket.io/")) return;
    ws.on("framesent", (f) => upgrade.frames.push(`> ${f.payload}`));
    ws.on("framereceived", (f) => upgrade.frames.push(`< ${f.payload}`));
    ws.on("close", () => (upgrade.closed = true));
  });
  await page.goto(`${server.httpUrl}/`);
  // "connected to backend.", at once followed by "authenticating…", "authenticated as …" and
  // "fetched data for …" when a token is stored: over a WebSocket all of that can pass
  // between two looks, so any of them says the page is connected.
  await page.waitForFunction(() => /connected to backend\.|authenticat|fetched data for/.test(document.getElementById("status").textContent));
  return { page, errors, upgrade };
}

const status = (page, text) => page.waitForFunction((t) => document.getElementById("status").textContent.includes(t), text);

test("the seed's demo page: sign up, replace, patch, fetch, and watch from a second page", async () => {
  const context = await seedContext();
  const first = await open(context);
  await first.page.screenshot({ path: `${ARTIFACTS}seed-demo-connected.png`, fullPage: true });

  await first.page.click("#signup");
  // The page shows "authenticated as …" and at once sends `fetch`, whose answer replaces
  // that status within milliseconds: the status can be gone before it is looked at, so the
  // lasting sign of a sign-in is the username the page fills in.
  const signedIn = (page) => page.waitForFunction(() => document.getElementById("username").value !== "");
  await signedIn(first.page);
  const username = await first.page.inputValue("#username");
  assert.match(username, /^[a-z]+-[a-z]+-\d{4}$/);
  // After `auth` the page fetches: the document at version 0.
  await first.page.waitForFunction(() => document.getElementById("userdata").value.includes('"version": 0'));

  // Replace, then patch, as the page's buttons send them.
  await first.page.fill("#userdata", JSON.stringify({ metadata: { version: 0 }, userdata: { foo: "bar", list: [1] } }));
  await first.page.click("#replace");
  await status(first.page, "has version 1");
  await first.page.fill("#userdata", JSON.stringify({ metadata: { version: 1 }, userdata: { list: [1, 2] } }));
  await first.page.click("#patch");
  await status(first.page, "has version 2");

  // A second page of the same browser signs in with the stored token and watches.
  const second = await open(context);
  await signedIn(second.page);
  assert.equal(await second.page.inputValue("#username"), username, "signed in with the stored token");
  await second.page.fill("#watch-username", username);
  await second.page.click("#watch");

  // Fetch shows the patched document; a stale write gets the seed's message.
  await first.page.click("#fetch");
  await status(first.page, "fetched data for");
  const fetched = JSON.parse(await first.page.inputValue("#userdata"));
  assert.deepEqual(fetched.userdata, { foo: "bar", list: [1, 2] });
  assert.equal(fetched.metadata.version, 2);
  await first.page.fill("#userdata", JSON.stringify({ metadata: { version: 0 }, userdata: { late: true } }));
  await first.page.click("#patch");
  await first.page.waitForSelector('#status.error:has-text("version mismatch")');
  await first.page.screenshot({ path: `${ARTIFACTS}seed-demo-mismatch.png`, fullPage: true });

  // A patch from the first page reaches the second page's watch.
  await first.page.fill("#userdata", JSON.stringify({ metadata: { version: 2 }, userdata: { watched: "yes" } }));
  await first.page.click("#patch");
  await second.page.waitForFunction(() => document.getElementById("watch-userdata").value.includes('"watched": "yes"'));
  const change = JSON.parse(await second.page.inputValue("#watch-userdata"));
  assert.equal(change.metadata.version, 3);
  assert.deepEqual(change.userdata, { foo: "bar", list: [1, 2], watched: "yes" });
  await first.page.screenshot({ path: `${ARTIFACTS}seed-demo-writer.png`, fullPage: true });
  await second.page.screenshot({ path: `${ARTIFACTS}seed-demo-watcher.png`, fullPage: true });

  assert.deepEqual(first.errors, []);
  assert.deepEqual(second.errors, []);
  // Both pages moved from long-polling to a WebSocket, as socket.io clients do, and the
  // watched change came over it.
  for (const { upgrade } of [first, second]) {
    assert.deepEqual(upgrade.frames.slice(0, 3), ["> 2probe", "< 3probe", "> 5"], upgrade.frames.join(" "));
    assert.equal(upgrade.closed, false);
  }
  assert.ok(second.upgrade.frames.some((f) => f.startsWith("< 42") && f.includes("watched")), second.upgrade.frames.join(" "));
  await context.close();
});
