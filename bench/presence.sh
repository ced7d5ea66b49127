#!/usr/bin/env bash
# i) presence at scale (issue 31), a fresh server and data dir per run:
# - c) with N watchers (lean reader, as bench/run.sh runs it), with and without every
#   watcher announcing its presence (alternated): does c)'s change p99 hold with N seats?
# - `--scenario presence`: N watchers announcing themselves at once; the document's change
#   latency before and after that join burst, the burst's length, and a presence update's
#   latency to all N, measured the same way as a change's.
# One JSON line per measurement, "label" first (table: python3 bench/ab_table.py).
#
#   bench/presence.sh                       # target/release/hearth, 3 runs
#   RUNS=5 N=1000 bench/presence.sh /path/to/hearth
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/hearth}; RUNS=${RUNS:-3}; N=${N:-1000}; PORT=${PORT:-18097}
BENCH=${BENCH:-target/release/hearth-bench}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
pid=""; data=""
trap 'kill "${pid:-}" 2>/dev/null || true; [ -n "$data" ] && rm -rf "$data"' EXIT
for r in $(seq "$RUNS"); do
  echo "presence: run $r/$RUNS, $N watchers" >&2
  data=$(mktemp -d)
  HOST=127.0.0.1 PORT=$PORT DATA_DIR="$data" RUST_LOG=warn \
  SIGNUPS_PER_IP=100000000 LOGINS_PER_IP=100000000 LOGINS_PER_USER=100000000 \
  MAX_REQUESTS_PER_SECOND=100000000 MAX_CONNECTIONS_PER_IP=1000000 MAX_CONNECTIONS_PER_USER=1000000 \
    "$BIN" >/dev/null 2>&1 &
  pid=$!
  "$BENCH" --addr "127.0.0.1:$PORT" --scenario ready --since-ns "$(date +%s%N)" >/dev/null
  C=(--scenario fanout --n "$N" --pid "$pid" --nap-us 1000 --idle-reader --warmup 20 --hold-ms 20)
  if [ $((r % 2)) -eq 1 ]; then order=("" --presence); else order=(--presence ""); fi
  for p in "${order[@]}"; do
    label="c) $N watchers${p:+, each present}"
    # shellcheck disable=SC2086
    "$BENCH" --addr "127.0.0.1:$PORT" "${C[@]}" $p | sed "s/^{/{\"label\":\"$label\",/"
  done
  "$BENCH" --addr "127.0.0.1:$PORT" --scenario presence --n "$N" | sed "s/^{/{\"label\":\"i) presence\",/"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"; data=""
done
