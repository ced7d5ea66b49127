#!/usr/bin/env bash
# personal-backend (the seed, from npm, under Node) against Hearth's /socket.io/, with the
# same socket.io load generator (bench/socketio.mjs), alternated ROUNDS times on fresh data
# each: a) sequential updates, b) 50 writers, c) 1000 watchers. One JSON line per run, label
# "old" (personal-backend) or "new" (Hearth); the table: python3 bench/ab_table.py FILE.
#
#   bench/socketio.sh                       # needs client-js's npm packages (npm ci)
#   ROUNDS=5 SECS=10 WATCHERS=1000 bench/socketio.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-10}; N=${N:-1000}; WATCHERS=${WATCHERS:-1000}
PORT=${PORT:-18097}
HEARTH=${HEARTH:-target/release/hearth}
SEED=client-js/node_modules/personal-backend/index.js
[ -f "$SEED" ] || (cd client-js && npm ci --no-audit --no-fund --loglevel=error)
say() { echo "socketio: $*" >&2; }
run_all() { # run_all LABEL PID: the three scenarios against whatever listens on PORT
  local label=$1 url=http://127.0.0.1:$PORT
  for s in "sequential --n $N" "writers --n 50 --secs $SECS" "watchers --n $WATCHERS --pid $2"; do
    say "$label: $s"
    # shellcheck disable=SC2086
    node bench/socketio.mjs --url "$url" --scenario $s | sed "s/^{/{\"label\":\"$label\",/"
  done
}
wait_port() {
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$PORT/socket.io/?EIO=4&transport=polling" >/dev/null && return 0
    sleep 0.05
  done
  echo "socketio: nothing listens on $PORT" >&2; return 1
}
if curl -s "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then
  echo "socketio: something already listens on $PORT" >&2; exit 1
fi
for r in $(seq "$ROUNDS"); do
  say "round $r/$ROUNDS"
  dir=$(mktemp -d)
  (cd "$dir" && PORT=$PORT JWT_SECRET=bench CACHE_SIZE=10000 CACHE_MAX_AGE=900000 MAX_DATA_SIZE_JSON=524288 \
    exec node "$OLDPWD/$SEED") >/dev/null 2>&1 &
  pid=$!
  wait_port && run_all old "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"

  dir=$(mktemp -d)
  HOST=127.0.0.1 PORT=$PORT DATA_DIR="$dir" RUST_LOG=warn \
  SIGNUPS_PER_IP=100000000 LOGINS_PER_IP=100000000 LOGINS_PER_USER=100000000 \
  MAX_REQUESTS_PER_SECOND=100000000 MAX_CONNECTIONS_PER_IP=1000000 MAX_CONNECTIONS_PER_USER=1000000 \
    "$HEARTH" >/dev/null 2>&1 &
  pid=$!
  wait_port && run_all new "$pid"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
done
