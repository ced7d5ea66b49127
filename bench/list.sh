#!/usr/bin/env bash
# h) `list` of one account's 1,000 named documents, builds alternated in one sitting, a fresh
# data dir per run. One JSON line per run, "label" first (table: python3 bench/ab_table.py).
#
#   bench/list.sh old=/tmp/hearth-old new=target/release/hearth
#   ROUNDS=2 DOC_BYTES=20000 ACCOUNTS=100 bench/list.sh old=... new=...
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; PORT=${PORT:-18091}; ACCOUNTS=${ACCOUNTS:-10}; DOC_BYTES=${DOC_BYTES:-0}
BENCH=${BENCH:-target/release/hearth-bench}
for r in $(seq "$ROUNDS"); do
  for pair in "$@"; do
    label=${pair%%=*}; bin=${pair#*=}
    echo "list: round $r/$ROUNDS, $label" >&2
    data=$(mktemp -d)
    HOST=127.0.0.1 PORT=$PORT DATA_DIR="$data" RUST_LOG=warn \
    SIGNUPS_PER_IP=100000000 LOGINS_PER_IP=100000000 LOGINS_PER_USER=100000000 \
    MAX_REQUESTS_PER_SECOND=100000000 MAX_CONNECTIONS_PER_IP=1000000 MAX_CONNECTIONS_PER_USER=1000000 \
      "$bin" >/dev/null 2>&1 &
    pid=$!
    "$BENCH" --addr "127.0.0.1:$PORT" --scenario ready --since-ns "$(date +%s%N)" >/dev/null
    "$BENCH" --addr "127.0.0.1:$PORT" --scenario list --n 1000 --accounts "$ACCOUNTS" \
      --doc-bytes "$DOC_BYTES" --pid "$pid" | sed "s/^{/{\"label\":\"$label\",/"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$data"
  done
done
