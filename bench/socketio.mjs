// The seed's benchmark shapes through a socket.io client, against any server that speaks
// personal-backend's events (Hearth's /socket.io/, or personal-backend itself): the same
// generator for both, so the ratio is the servers'. One JSON line per scenario.
//
//   node bench/socketio.mjs --url http://127.0.0.1:8080 --scenario sequential --n 1000
//   node bench/socketio.mjs --url ... --scenario writers --n 50 --secs 10
//   node bench/socketio.mjs --url ... --scenario watchers --n 1000
//
// a) sequential: one client, updates one after another, each waiting for `version`.
// b) writers: n clients, each updating its own document in a closed loop.
// c) watchers: n connections signed in as one user watch its document; 100 updates, 50 ms
//    apart; latency from the update's emit to each watcher's `change`.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

const require = createRequire(new URL("../client-js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    scenario: { type: "string" },
    n: { type: "string" },
    secs: { type: "string", default: "10" },
    transport: { type: "string", default: "websocket" },
    pid: { type: "string" },
  },
});

function connect() {
  return new Promise((resolve, reject) => {
    const s = io(args.url, { transports: [args.transport], reconnection: false, forceNew: true });
    s.once("connect", () => resolve(s));
    s.once("connect_error", reject);
  });
}

function next(socket, name, ms = 30_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} within ${ms} ms`)), ms);
    socket.once(name, (...a) => {
      clearTimeout(timer);
      resolve(a);
    });
  });
}

async function signup() {
  const s = await connect();
  s.emit("signup");
  const [username, token] = await next(s, "auth");
  return { s, username, token };
}

/** The server's CPU time so far in µs (`/proc/PID/stat`, 10 ms ticks), if `--pid` was given. */
function serverCpuUs() {
  if (!args.pid) return NaN;
  const stat = readFileSync(`/proc/${args.pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const ms = (ns) => Math.round(Number(ns) / 1e3) / 1e3;
const print = (scenario, metrics) => console.log(JSON.stringify({ scenario, metrics }));

async function update(c, version, userdata) {
  const answer = next(c.s, "version");
  c.s.emit("update", { metadata: { version }, userdata }, null, true);
  return (await answer)[1];
}

async function sequential(n) {
  const c = await signup();
  const lat = [];
  const start = process.hrtime.bigint();
  for (let v = 0; v < n; v++) {
    const t = process.hrtime.bigint();
    await update(c, v, { v });
    lat.push(process.hrtime.bigint() - t);
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  lat.sort((a, b) => (a < b ? -1 : 1));
  print("sequential", { ops_per_s: Math.round(n / secs), p50_ms: ms(pct(lat, 50)), p99_ms: ms(pct(lat, 99)) });
  c.s.close();
}

async function writers(n, secs) {
  const clients = [];
  for (let i = 0; i < n; i++) clients.push(await signup());
  const lat = [];
  let done = 0;
  const until = Date.now() + secs * 1000;
  await Promise.all(
    clients.map(async (c) => {
      let v = 0;
      while (Date.now() < until) {
        const t = process.hrtime.bigint();
        v = await update(c, v, { v });
        lat.push(process.hrtime.bigint() - t);
        done++;
      }
    }),
  );
  lat.sort((a, b) => (a < b ? -1 : 1));
  print("writers", { updates_per_s: Math.round(done / secs), p50_ms: ms(pct(lat, 50)), p99_ms: ms(pct(lat, 99)) });
  for (const c of clients) c.s.close();
}

async function watchers(n) {
  const writer = await signup();
  const sockets = [];
  for (let i = 0; i < n; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, async () => {
        const s = await connect();
        s.emit("auth", writer.token);
        await next(s, "auth");
        s.emit("watch");
        return s;
      }),
    );
    sockets.push(...batch);
  }
  await new Promise((r) => setTimeout(r, 1000));
  const sent = new Map();
  const lat = [];
  for (const s of sockets) {
    s.on("change", (_, data) => {
      const at = sent.get(data.metadata.version);
      if (at !== undefined) lat.push(process.hrtime.bigint() - at);
    });
  }
  let version = 0;
  const cpuBefore = serverCpuUs();
  for (let i = 0; i < 100; i++) {
    sent.set(version + 1, process.hrtime.bigint());
    version = await update(writer, version, { i });
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 2000));
  const cpu = serverCpuUs() - cpuBefore;
  lat.sort((a, b) => (a < b ? -1 : 1));
  print("watchers", {
    server_cpu_us_per_delivery: Math.round((cpu / (n * 100)) * 100) / 100,
    watchers: n,
    delivered: lat.length,
    expected: n * 100,
    change_p50_ms: ms(pct(lat, 50)),
    change_p99_ms: ms(pct(lat, 99)),
  });
  for (const s of sockets) s.close();
  writer.s.close();
}

const n = Number(args.n ?? 1000);
if (args.scenario === "sequential") await sequential(n);
else if (args.scenario === "writers") await writers(n, Number(args.secs));
else if (args.scenario === "watchers") await watchers(n);
else throw new Error(`unknown scenario ${args.scenario}`);
process.exit(0);
