#!/usr/bin/env bash
# Hearth's benchmark run: builds release, starts the server on a temp data dir, runs every
# scenario RUNS times (default 3) with the load generator in a separate process, and prints
# one markdown table (median, min–max) with a description of the machine. Progress goes to
# stderr; the table to stdout. Everything stays on loopback and stops by itself.
#
#   bench/run.sh                 # the full run (≈ 10 minutes; f) writes about 1 GB)
#   RUNS=1 QUICK=1 bench/run.sh  # a smoke run with small sizes
#   HEARTH=/path/to/old/hearth bench/run.sh   # another build of the server (old against new)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
if [ -n "${QUICK:-}" ]; then
  WATCHERS=(200); IDLE_MAX=2000; POPULATE=2000; SIZE=1000; SECS=3
else
  WATCHERS=(1000 10000); IDLE_MAX=${IDLE_MAX:-19000}; POPULATE=${POPULATE:-100000}; SIZE=${SIZE:-10000}; SECS=10
fi
PORT=${PORT:-18080}
ADDR=127.0.0.1:$PORT
say() { echo "bench: $*" >&2; }

say "building release"
cargo build --release -p hearth -p hearth-bench >&2
HEARTH=${HEARTH:-target/release/hearth}
say "server: $HEARTH"
BENCH=target/release/hearth-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "open-file limit $(ulimit -n)"

RESULTS=$(mktemp)
DATA=""
PID=""
start() { # starts hearth on $DATA; prints the ready report; sets PID (call it without a pipe)
  local since
  if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then
    say "port $PORT is already in use: stop whatever listens there first"; exit 1
  fi
  since=$(date +%s%N)
  HOST=127.0.0.1 PORT=$PORT DATA_DIR="$DATA" RUST_LOG=warn \
  SIGNUPS_PER_IP=100000000 LOGINS_PER_IP=100000000 LOGINS_PER_USER=100000000 \
  MAX_REQUESTS_PER_SECOND=100000000 MAX_CONNECTIONS_PER_IP=1000000 MAX_CONNECTIONS_PER_USER=1000000 \
    "$HEARTH" >/dev/null 2>&1 &
  PID=$!
  "$BENCH" --addr "$ADDR" --scenario ready --since-ns "$since"
  kill -0 "$PID" 2>/dev/null || { say "hearth exited during start"; exit 1; }
}
stop() { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
cleanup() { stop; [ -n "$DATA" ] && rm -rf "$DATA"; rm -f "$RESULTS"; }
trap cleanup EXIT
run() { # run <label> <args...>: one scenario, tagged, into RESULTS
  local label=$1; shift
  say "run $r/$RUNS: $label"
  "$BENCH" --addr "$ADDR" "$@" | sed "s/^{/{\"label\":\"$label\",/" >>"$RESULTS"
}
# c)'s watchers are timed by the kernel's receive timestamps, and their reader runs at the
# lowest priority, looking at its sockets every millisecond rather than sleeping on them: it
# takes only CPU the server leaves and never has the server's writes wake it, as clients on
# other machines would not, and when it reads changes nothing measured (bench/src/watchers.rs,
# BENCHMARKS.md, c)). Nothing is pinned. 20 warm-up updates go first: without them c)'s
# first 13 rounds were ≈ 2 ms slower than the rest, the step falling at each connection's
# 16th segment (the length of TCP's quick-ack phase, whose acknowledgements run on the
# server's core over loopback); watchers live long, so c) measures the steady state.
# The reader also holds off for 20 ms after each send, reading in the quiet part of each
# 50 ms interval: even at SCHED_IDLE this kernel gave it the fanout thread's core for 2–3 ms
# at a time in 1 round of 10, and those rounds made c)'s p99 (BENCHMARKS.md, c)). The
# "reader not held" row keeps that effect in view.
C_UNHELD=(--nap-us 1000 --idle-reader --warmup 20)
C_READER=("${C_UNHELD[@]}" --hold-ms 20)

for r in $(seq "$RUNS"); do
  DATA=$(mktemp -d)
  start >/dev/null
  run "a) sequential, 2000 updates" --scenario sequential --n 2000
  run "b) 50 writers, ${SECS} s" --scenario writers --n 50 --secs "$SECS"
  # The same with an `opId` on every update, as client-js's outbox sends them.
  run "b) 50 writers, each update with an opId" --scenario writers --n 50 --secs "$SECS" --op-ids
  # Issue 32: an append to a stream costs what an update does.
  run "a) sequential, 2000 appends to a stream" --scenario sequential --n 2000 --append
  run "b) 50 writers, each appending to its stream" --scenario writers --n 50 --secs "$SECS" --append
  # The disk alone, in the server's data directory: a 4 KiB O_DIRECT write + fdatasync every
  # 50 ms, what each of c)'s acks asks of it, with no server in the way (bench/src/disk.rs).
  run "c) the disk alone, 200 quiet commits" --scenario disk --n 200 --dir "$DATA"
  # The same writer with a single watcher: the ack after 50 ms of quiet with no fanout to
  # compete with, so c)'s ack can be read as the fanout's doing or the commit's.
  run "c) reference, 1 watcher" --scenario fanout --n 1 --pid "$PID" "${C_READER[@]}"
  for w in "${WATCHERS[@]}"; do
    run "c) fanout, $w watchers" --scenario fanout --n "$w" --pid "$PID" "${C_READER[@]}"
  done
  run "c) reference, ${WATCHERS[0]} watchers, reader not held" --scenario fanout --n "${WATCHERS[0]}" --pid "$PID" "${C_UNHELD[@]}"
  # d) twice: a writer keeping 8 updates in flight (as fast as one client can send: the
  # fanout's capacity) and a closed-loop writer (bound by its own round trip under load).
  run "d) saturation, ${WATCHERS[0]} watchers, 8 in flight" --scenario saturation --n "${WATCHERS[0]}" --secs "$SECS" --pipeline 8
  run "d) saturation, ${WATCHERS[0]} watchers, closed loop" --scenario saturation --n "${WATCHERS[0]}" --secs "$SECS"
  stop
  # REST on a fresh server: after d) the server is still sending its last changes to 1000
  # closing sockets and trimming thousands of versions, which g) would measure too.
  rm -rf "$DATA"; DATA=$(mktemp -d)
  start >/dev/null
  run "g) REST, 50 clients" --scenario rest --n 50 --secs "$SECS"
  stop
  # Idle connections on a fresh server, so RSS is not inflated by earlier scenarios.
  start >/dev/null
  run "e) idle connections" --scenario idle --n "$IDLE_MAX" --pid "$PID" --sources 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4
  stop
  rm -rf "$DATA"
done

# f) restart with a large store: fill once, then time RUNS restarts.
DATA=$(mktemp -d)
start >/dev/null
say "f) filling the store: $POPULATE documents of $SIZE bytes"
"$BENCH" --addr "$ADDR" --scenario populate --n "$POPULATE" --size "$SIZE" >/dev/null
stop
say "f) store on disk: $(du -sh "$DATA" | cut -f1)"
SIZE_ON_DISK=$(du -sh "$DATA" | cut -f1)
READY=$(mktemp)
for r in $(seq "$RUNS"); do
  start >"$READY"
  sed "s/^{/{\"label\":\"f) restart, $POPULATE docs, $SIZE_ON_DISK on disk\",/" "$READY" >>"$RESULTS"
  stop
done
rm -f "$READY"

# RESULTS_OUT=file keeps the raw JSON lines (for comparing runs, e.g. with bench/ab_table.py).
[ -n "${RESULTS_OUT:-}" ] && cp "$RESULTS" "$RESULTS_OUT"
python3 bench/table.py "$RESULTS"
