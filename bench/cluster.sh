#!/usr/bin/env bash
# Cluster benchmark: two Hearth nodes on one PostgreSQL database (STORE=postgres) next to a
# single redb node, measured in the same run so the ratios hold on this noisy machine:
#   b) 50 writers (spread over both nodes), durable updates/s;
#   c) 1000 watchers on node B while the writer is on node A: cross-node send→change.
# Needs a local PostgreSQL (127.0.0.1:5432, trust auth) or BENCH_DATABASE_URL's server; a
# fresh database is created and dropped. RUNS (default 3) rounds; progress on stderr, the
# table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECS:-10}
WATCHERS=${WATCHERS:-1000}
say() { echo "bench: $*" >&2; }
say "building release"
cargo build --release -p hearth -p hearth-bench >&2
HEARTH=target/release/hearth
BENCH=target/release/hearth-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

DB="hearth_bench_$$"
psql -h 127.0.0.1 -d test -qc "CREATE DATABASE $DB" >/dev/null
URL=${BENCH_DATABASE_URL:-postgres://$(id -un)@127.0.0.1/$DB}
RESULTS=$(mktemp)
PIDS=()
DATA=$(mktemp -d)
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -d test -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$DATA" "$RESULTS"
}
trap cleanup EXIT

node() { # node <port> <name> [env...]: starts a node, waits until it is ready
  local port=$1 name=$2; shift 2
  env HOST=127.0.0.1 PORT="$port" DATA_DIR="$DATA/$name" RUST_LOG=warn \
    SIGNUPS_PER_IP=100000000 LOGINS_PER_IP=100000000 LOGINS_PER_USER=100000000 \
    MAX_REQUESTS_PER_SECOND=100000000 MAX_CONNECTIONS_PER_IP=1000000 MAX_CONNECTIONS_PER_USER=1000000 \
    "$@" "$HEARTH" >/dev/null 2>&1 &
  PIDS+=($!)
  "$BENCH" --addr "127.0.0.1:$port" --scenario ready >/dev/null
}
stop_all() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
run() { # run <label> <addr> <args...>
  local label=$1 addr=$2; shift 2
  say "run $r/$RUNS: $label"
  "$BENCH" --addr "$addr" "$@" | sed "s/^{/{\"label\":\"$label\",/" >>"$RESULTS"
}

# c)'s watchers as bench/run.sh has them: timed by the kernel, read at idle priority after
# each round is out (20 ms after the send), after 20 warm-up updates (BENCHMARKS.md, c)).
C_READER=(--nap-us 1000 --idle-reader --warmup 20 --hold-ms 20)

for r in $(seq "$RUNS"); do
  node 18301 redb
  run "single node, redb: b) 50 writers" 127.0.0.1:18301 --scenario writers --n 50 --secs "$SECS"
  run "single node, redb: c) $WATCHERS watchers" 127.0.0.1:18301 --scenario fanout --n "$WATCHERS" "${C_READER[@]}"
  stop_all
  SCHEMA="run$r"
  node 18311 a STORE=postgres DATABASE_URL="$URL" DATABASE_SCHEMA="$SCHEMA"
  node 18312 b STORE=postgres DATABASE_URL="$URL" DATABASE_SCHEMA="$SCHEMA"
  run "2 nodes, postgres: b) 50 writers over both" 127.0.0.1:18311,127.0.0.1:18312 --scenario writers --n 50 --secs "$SECS"
  run "2 nodes, postgres: c) $WATCHERS watchers on B, writer on A" 127.0.0.1:18311,127.0.0.1:18312 --scenario fanout --n "$WATCHERS" "${C_READER[@]}"
  run "2 nodes, postgres: c) $WATCHERS watchers, same node" 127.0.0.1:18311 --scenario fanout --n "$WATCHERS" "${C_READER[@]}"
  stop_all
done
python3 bench/table.py "$RESULTS"
