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
source bench/lib.sh
for r in $(seq "$ROUNDS"); do
  say "round $r/$ROUNDS: b) default documents"
  with_server labelled old --scenario writers --n 50 --secs "$SECS"
  say "round $r/$ROUNDS: b) named documents"
  with_server labelled new --scenario writers --n 50 --secs "$SECS" --named
  [ -n "${ONLY_B:-}" ] && continue
  for named in "" --named; do
    label=old; [ -n "$named" ] && label=new
    say "round $r/$ROUNDS: c) 1000 watchers ${named:-(default)}"
    with_server sh -c "'$BENCH' --addr $ADDR --scenario fanout --n 1000 --pid \$PID --nap-us 1000 --idle-reader --warmup 20 --hold-ms 20 $named | sed 's/^{/{\"label\":\"$label\",/'"
  done
done
say "h) list: $DOCS documents, $ACCOUNTS other accounts with 100 each"
with_server sh -c "'$BENCH' --addr $ADDR --scenario list --n $DOCS --accounts $ACCOUNTS --pid \$PID"
