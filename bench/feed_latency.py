"""Latency from a write's answer to its webhook delivery and to its SSE feed event, on a
server whose deliverer and feed follower have caught up (writes 250 ms apart): what an
integration waits for a change. Usage: python3 bench/feed_latency.py target/release/hearth
(N=30 writes; needs `requests`)."""
import http.server, json, os, socket, statistics, subprocess, sys, tempfile, threading, time
import requests

BIN = sys.argv[1]
N = int(os.environ.get("N", "30"))
arrivals = {}

class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        t = time.monotonic()
        v = json.loads(body).get("version")
        arrivals.setdefault(("hook", v), t)
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass

rx = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=rx.serve_forever, daemon=True).start()
d = tempfile.mkdtemp()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, DATA_DIR=d, PORT=str(port), HOST="127.0.0.1", ADMIN_USERS="boss",
           WEBHOOK_ALLOW_PRIVATE="1", RUST_LOG="warn")
subprocess.run([BIN, "user", "create", "boss", "--password-stdin"], input=b"correct horse battery\n", env=env, check=True, capture_output=True)
srv = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"
for _ in range(100):
    try: requests.get(base + "/healthz", timeout=0.2); break
    except Exception: time.sleep(0.1)
try:
    boss = requests.post(base + "/v1/login", json={"username": "boss", "password": "correct horse battery"}).json()["token"]
    r = requests.post(base + "/v1/signup", json={"username": "ann", "password": "correct horse battery"}).json()
    tok = r["token"]
    h = {"authorization": f"Bearer {tok}"}
    requests.post(base + "/v1/me/webhooks", json={"url": f"http://127.0.0.1:{rx.server_address[1]}/h"}, headers=h).raise_for_status()
    def follow():
        with requests.get(base + "/v1/admin/feed", headers={"authorization": f"Bearer {boss}", "accept": "text/event-stream"}, stream=True) as resp:
            for line in resp.iter_lines():
                if line.startswith(b"data:"):
                    v = json.loads(line[5:]).get("version")
                    arrivals.setdefault(("feed", v), time.monotonic())
    threading.Thread(target=follow, daemon=True).start()
    time.sleep(1.5)
    acked = {}
    for i in range(N):
        r = requests.put(base + "/v1/users/ann/data/n", json=i, headers=h)
        r.raise_for_status()
        acked[r.json()["version"]] = time.monotonic()
        time.sleep(0.25 + (i % 7) * 0.013)
    time.sleep(1.5)
    for kind in ("hook", "feed"):
        ms = [(arrivals[(kind, v)] - t) * 1000 for v, t in acked.items() if (kind, v) in arrivals]
        print(f"{kind}: n={len(ms)} median={statistics.median(ms):.1f} ms  p90={sorted(ms)[int(len(ms)*0.9)]:.1f} ms  max={max(ms):.1f} ms")
finally:
    srv.terminate(); srv.wait()
