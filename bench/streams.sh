#!/usr/bin/env bash
# Appends against updates (issue 32: "appending to a stream is as fast as an update"), in one
# sitting on one build: a) 2000 sequential updates of a named document against 2000 appends
# to a stream, and b) 50 writers each updating a named document of its own against 50 each
# appending to a stream of its own. A stream is a named document, so that is the like-for-like
# pair (bench/named.sh compares named documents with default ones). Each run on a fresh data
# dir, alternated ROUNDS times. Prints one JSON line per run; the table:
# `python3 bench/ab_table.py FILE` (old = update, new = append).
#
#   bench/streams.sh > /tmp/streams.out && python3 bench/ab_table.py /tmp/streams.out
#   ROUNDS=5 SECS=8 bench/streams.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-10}; PORT=${PORT:-18084}
HEARTH=${HEARTH:-target/release/hearth}
BENCH=${BENCH:-target/release/hearth-bench}
ADDR=127.0.0.1:$PORT
say() { echo "streams: $*" >&2; }
with_server() { # with_server <label> <bench args...>: a fresh server around one run
  local label=$1 data pid
  shift
  data=$(mktemp -d)
  HOST=127.0.0.1 PORT=$PORT DATA_DIR="$data" RUST_LOG=warn \
  SIGNUPS_PER_IP=100000000 LOGINS_PER_IP=100000000 LOGINS_PER_USER=100000000 \
  MAX_REQUESTS_PER_SECOND=100000000 MAX_CONNECTIONS_PER_IP=1000000 MAX_CONNECTIONS_PER_USER=1000000 \
    "$HEARTH" >/dev/null 2>&1 &
  pid=$!
  "$BENCH" --addr "$ADDR" --scenario ready --since-ns "$(date +%s%N)" >/dev/null
  "$BENCH" --addr "$ADDR" "$@" | sed "s/^{/{\"label\":\"$label\",/"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
for r in $(seq "$ROUNDS"); do
  say "round $r/$ROUNDS: a)"
  with_server old --scenario sequential --n 2000 --named
  with_server new --scenario sequential --n 2000 --append
  say "round $r/$ROUNDS: b)"
  with_server old --scenario writers --n 50 --secs "$SECS" --named
  with_server new --scenario writers --n 50 --secs "$SECS" --append
done
