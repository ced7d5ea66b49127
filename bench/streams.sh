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
source bench/lib.sh
for r in $(seq "$ROUNDS"); do
  say "round $r/$ROUNDS: a)"
  with_server labelled old --scenario sequential --n 2000 --named
  with_server labelled new --scenario sequential --n 2000 --append
  say "round $r/$ROUNDS: b)"
  with_server labelled old --scenario writers --n 50 --secs "$SECS" --named
  with_server labelled new --scenario writers --n 50 --secs "$SECS" --append
done
