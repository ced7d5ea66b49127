#!/usr/bin/env bash
# Named documents against default ones, in one sitting on one build: b) 50 writers each on its
# default document, then each on a named document of its own, and c) 1000 watchers of a
# default document, then of a named one (as bench/run.sh runs c)), alternated ROUNDS times on
# a fresh data dir each; then h) `list` of one account's DOCS named documents while ACCOUNTS
# other accounts hold 100 each. Prints one JSON line per run ("label" first); the table:
# `python3 bench/ab_table.py` (old = default, new = named) for b) and c), the h) line as is.
#
#   bench/named.sh                      # 3 rounds, 10 s each, h) with 1000 + 100 x 100 docs
#   ROUNDS=5 ACCOUNTS=1000 bench/named.sh
#   ONLY_B=1 ROUNDS=8 bench/named.sh      # b) only (then h))
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-10}; PORT=${PORT:-18083}
DOCS=${DOCS:-1000}; ACCOUNTS=${ACCOUNTS:-100}
HEARTH=${HEARTH:-target/release/hearth}
BENCH=${BENCH:-target/release/hearth-bench}
ADDR=127.0.0.1:$PORT
say() { echo "named: $*" >&2; }
with_server() { # with_server <command...>: a fresh server around one command
  local data pid
  data=$(mktemp -d)
  HOST=127.0.0.1 PORT=$PORT DATA_DIR="$data" RUST_LOG=warn \
  SIGNUPS_PER_IP=100000000 LOGINS_PER_IP=100000000 LOGINS_PER_USER=100000000 \
  MAX_REQUESTS_PER_SECOND=100000000 MAX_CONNECTIONS_PER_IP=1000000 MAX_CONNECTIONS_PER_USER=1000000 \
    "$HEARTH" >/dev/null 2>&1 &
  pid=$!
  "$BENCH" --addr "$ADDR" --scenario ready --since-ns "$(date +%s%N)" >/dev/null
  PID=$pid "$@"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
for r in $(seq "$ROUNDS"); do
  say "round $r/$ROUNDS: b) default documents"
  with_server sh -c "'$BENCH' --addr $ADDR --scenario writers --n 50 --secs $SECS | sed 's/^{/{\"label\":\"old\",/'"
  say "round $r/$ROUNDS: b) named documents"
  with_server sh -c "'$BENCH' --addr $ADDR --scenario writers --n 50 --secs $SECS --named | sed 's/^{/{\"label\":\"new\",/'"
  [ -n "${ONLY_B:-}" ] && continue
  for named in "" --named; do
    label=old; [ -n "$named" ] && label=new
    say "round $r/$ROUNDS: c) 1000 watchers ${named:-(default)}"
    with_server sh -c "'$BENCH' --addr $ADDR --scenario fanout --n 1000 --pid \$PID --nap-us 1000 --idle-reader --warmup 20 --hold-ms 20 $named | sed 's/^{/{\"label\":\"$label\",/'"
  done
done
say "h) list: $DOCS documents, $ACCOUNTS other accounts with 100 each"
with_server sh -c "'$BENCH' --addr $ADDR --scenario list --n $DOCS --accounts $ACCOUNTS --pid \$PID"
