// Moving from personal-backend: the real personal-backend@0.1.0 (from npm, under Node) makes
// a `.data/` directory through its own socket.io API; `hearth import personal-backend` brings
// it into Hearth; the same socket.io client, with the token personal-backend gave it, signs
// in to Hearth (LEGACY_JWT_SECRET) and finds its data as it was.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { io } from "socket.io-client";

import { nextEvent, startServer, until } from "./server.js";

const BIN = process.env.HEARTH_BIN ?? fileURLToPath(new URL("../../target/debug/hearth", import.meta.url));
const SEED = fileURLToPath(new URL("../node_modules/personal-backend/index.js", import.meta.url));
const SECRET = "the seed's secret";

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const next = nextEvent;

async function connected(url) {
  const s = io(url, { reconnection: false, forceNew: true, transports: ["websocket"] });
  await next(s, "connect");
  return s;
}

/** Signs up until personal-backend's generated name is one Hearth accepts too. */
async function signup(url) {
  for (;;) {
    const s = await connected(url);
    s.emit("signup");
    const [username, token] = await next(s, "auth");
    if (/^[a-z0-9_-]{3,32}$/.test(username)) return { s, username, token };
    s.close();
  }
}

test("personal-backend's data and tokens move to Hearth", async () => {
  const seedDir = await mkdtemp(join(tmpdir(), "pb-"));
  const port = await freePort();
  const seed = spawn(process.execPath, [SEED], {
    cwd: seedDir,
    env: { ...process.env, PORT: String(port), JWT_SECRET: SECRET, CACHE_SIZE: "100", CACHE_MAX_AGE: "900000", MAX_DATA_SIZE_JSON: "65536" },
    stdio: "ignore",
  });
  const seedUrl = `http://127.0.0.1:${port}`;
  const clients = [];
  let ann;
  let bob;
  try {
    await until(async () => {
      try {
        return (await fetch(`${seedUrl}/socket.io/?EIO=4&transport=polling`)).ok;
      } catch {
        return false;
      }
    }, 15_000, "personal-backend to listen");
    ann = await signup(seedUrl);
    bob = await signup(seedUrl);
    clients.push(ann.s, bob.s);
    ann.s.emit("update", { metadata: { version: 0, collaborators: [bob.username, "nobody-here"] }, userdata: { list: ["milk"] } });
    assert.deepEqual(await next(ann.s, "version"), [ann.username, 1]);
    bob.s.emit("update", { metadata: { version: 1 }, userdata: { list: ["milk", "eggs"], by: "bob" } }, ann.username, true);
    assert.deepEqual(await next(bob.s, "version"), [ann.username, 2]);
    for (const s of clients) s.close();
  } finally {
    seed.kill();
  }
  const files = Object.fromEntries(
    [ann, bob].map((u) => [u.username, JSON.parse(readFileSync(join(seedDir, ".data", `${u.username}.json`), "utf8"))]),
  );

  // Into a fresh Hearth data dir, then a server on it that knows the seed's secret.
  const dataDir = await mkdtemp(join(tmpdir(), "hearth-pb-"));
  const { stdout } = await promisify(execFile)(BIN, ["import", "personal-backend", join(seedDir, ".data")], {
    env: { ...process.env, DATA_DIR: dataDir, JWT_SECRET: "" },
  });
  assert.match(stdout, /imported 2, already present 0, skipped 0, collaborators dropped 1/);
  const server = await startServer({ dataDir, env: { LEGACY_JWT_SECRET: SECRET } });
  try {
    // The same client code, with the token personal-backend gave it.
    const s = await connected(server.httpUrl);
    s.emit("auth", ann.token);
    const [username, fresh] = await next(s, "auth");
    assert.equal(username, ann.username);
    assert.notEqual(fresh, ann.token, "traded for an ordinary token");
    s.emit("fetch");
    const [, data] = await next(s, "data");
    const was = files[ann.username];
    assert.equal(data.metadata.version, was.metadata.version);
    assert.deepEqual(data.metadata.collaborators, [bob.username]);
    assert.equal(data.metadata.createdAt, was.metadata.createdAt);
    assert.deepEqual(data.metadata.lastUpdate, was.metadata.lastUpdate);
    assert.deepEqual(data.userdata, was.userdata);
    // bob, with his old token too, may still write ann's list, at the version it had.
    const b = await connected(server.httpUrl);
    b.emit("auth", bob.token);
    await next(b, "auth");
    b.emit("update", { metadata: { version: 2 }, userdata: { done: true } }, ann.username, true);
    assert.deepEqual(await next(b, "version"), [ann.username, 3]);
    s.close();
    b.close();
  } finally {
    await server.cleanup();
    await rm(seedDir, { recursive: true, force: true });
  }
});
