// Starts the real hearth binary on a free port with a temp data dir, for tests.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import WebSocket from "ws";

import { connect } from "../src/index.js";

const BIN = process.env.HEARTH_BIN ?? fileURLToPath(new URL("../../target/debug/hearth", import.meta.url));

export async function startServer({ dataDir, port = 0, env = {} } = {}) {
  dataDir ??= await mkdtemp(join(tmpdir(), "hearth-js-"));
  const child = spawn(BIN, [], {
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), DATA_DIR: dataDir, RUST_LOG: "info", JWT_SECRET: "",
      // One address, many clients: lift the abuse limits (the Rust suite tests them).
      SIGNUPS_PER_IP: "1000000", LOGINS_PER_IP: "1000000", LOGINS_PER_IP_USER: "1000000", LOGINS_PER_USER: "1000000", MAX_REQUESTS_PER_SECOND: "1000000",
      ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const bound = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 15_000);
    child.stdout.on("data", (chunk) => {
      log += chunk;
      const m = /addr=127\.0\.0\.1:(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.stderr.on("data", (chunk) => (log += chunk));
    child.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  return {
    port: bound,
    url: `ws://127.0.0.1:${bound}/ws`,
    httpUrl: `http://127.0.0.1:${bound}`,
    dataDir,
    child,
    /** SIGTERM and wait for exit. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
    /** Stop, then start again on the same port and data dir. */
    async restart() {
      await this.stop();
      return startServer({ dataDir, port: bound, env });
    },
    async cleanup() {
      await this.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves when `predicate()` is true, polling; rejects after `ms`. */
export async function until(predicate, ms = 10_000, what = "condition") {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The process state letter from /proc (`T` = stopped, `S` = sleeping, ...). */
export function processState(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return "?";
  }
}

/** The next `name` event's arguments on an event emitter (a socket.io socket); rejects
 * after `ms`. */
export function nextEvent(emitter, name, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} within ${ms} ms`)), ms);
    emitter.once(name, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** Headless Chromium (Debian's, or $CHROMIUM) as every browser test launches it. */
export async function launchChromium(chromium, extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", ...extraArgs],
  });
}

/**
 * What every browser test file sets up: a server and Chromium for its tests (stopped after
 * them), where screenshots go, and `guest()`, a new person on the demo page (their own
 * browser context) signed up as a guest and live.
 */
export function browserSuite(chromium, hooks) {
  // `hooks`: node:test's `before` and `after`, and optionally `server`, a function starting
  // the server some other way.
  const suite = {
    server: null,
    browser: null,
    artifacts: fileURLToPath(new URL("../../artifacts/", import.meta.url)),
    async guest({ colorScheme = "light", screenshot } = {}) {
      const context = await suite.browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme });
      const page = await context.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(e));
      await page.goto(suite.server.httpUrl);
      if (screenshot) await page.screenshot({ path: `${suite.artifacts}${screenshot}` });
      await page.click("#guest");
      await page.waitForFunction(() => document.getElementById("me").textContent.length > 0);
      await page.waitForSelector("#status.online");
      return { context, page, username: await page.textContent("#me"), errors };
    },
  };
  hooks.before(async () => {
    suite.server = await (hooks.server ?? startServer)();
    await mkdir(suite.artifacts, { recursive: true });
    suite.browser = await launchChromium(hooks.chromium ?? chromium);
  });
  hooks.after(async () => {
    await suite.browser?.close();
    await suite.server?.cleanup();
  });
  return suite;
}

/**
 * What a client test file sets up: a server for its tests (`suite.server`, which a test may
 * replace with its restart) and `suite.client(options)`, a client of it with `defaults`,
 * closed after them. `hooks`: node:test's `before` and `after`.
 */
export function serverSuite(hooks, defaults = {}) {
  const clients = [];
  const suite = {
    server: null,
    client(options = {}) {
      const c = connect(suite.server.url, { WebSocket, requestTimeout: 5000, ...defaults, ...options });
      clients.push(c);
      return c;
    },
    /** Clients made some other way (of another server), closed with the rest. */
    closeLater(...made) {
      clients.push(...made);
    },
  };
  hooks.before(async () => {
    suite.server = await startServer();
  });
  hooks.after(async () => {
    for (const c of clients) c.close();
    await suite.server.cleanup();
  });
  return suite;
}
