#!/usr/bin/env bash
# Old against new in one sitting: alternates two hearth binaries, ROUNDS times each, over
# a), b) and g) (the scenarios a change to the request path moves), each on a fresh data dir,
# with the same load generator. Prints one JSON line per run (label "old"/"new" first).
#
#   bench/ab.sh OLD_BINARY NEW_BINARY            # e.g. a release build of the base commit
#   ROUNDS=5 SECS=5 bench/ab.sh old new
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1; NEW=$2
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-10}; PORT=${PORT:-18081}
BENCH=${BENCH:-target/release/hearth-bench}
ADDR=127.0.0.1:$PORT
say() { echo "ab: $*" >&2; }
run_one() { # run_one <label> <binary>
  local data pid
  data=$(mktemp -d)
  HOST=127.0.0.1 PORT=$PORT DATA_DIR="$data" RUST_LOG=warn \
  SIGNUPS_PER_IP=100000000 LOGINS_PER_IP=100000000 LOGINS_PER_USER=100000000 \
  MAX_REQUESTS_PER_SECOND=100000000 MAX_CONNECTIONS_PER_IP=1000000 MAX_CONNECTIONS_PER_USER=1000000 \
    "$2" >/dev/null 2>&1 &
  pid=$!
  "$BENCH" --addr "$ADDR" --scenario ready --since-ns "$(date +%s%N)" >/dev/null
  for s in "sequential --n 2000" "writers --n 50 --secs $SECS" "rest --n 50 --secs $SECS"; do
    say "$1: $s"
    # shellcheck disable=SC2086
    "$BENCH" --addr "$ADDR" --scenario $s | sed "s/^{/{\"label\":\"$1\",/"
  done
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
for r in $(seq "$ROUNDS"); do
  say "round $r/$ROUNDS"
  run_one old "$OLD"
  run_one new "$NEW"
done
