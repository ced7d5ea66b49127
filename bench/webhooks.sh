#!/usr/bin/env bash
# What webhooks cost commits (issue 32: "a webhook on a document does not change that
# document's b) by more than 5%"): b) 50 writers with no webhook ("old") against the same
# with an admin's webhook ("new"), each run on a fresh data dir, alternated ROUNDS times.
# MODE=all: an admin's webhook posts every change of all 50 documents to a receiver on
# loopback (fifty times "a webhook on a document"; the worst case). MODE=scan: the admin's
# webhook on their own documents, which b) does not write: what a webhook costs while the
# feed passes by changes that are not its owner's. MODE=one: a webhook on the first
# writer's document, posting each of its changes (the issue's case). Prints one JSON line per run; the table:
# `python3 bench/ab_table.py FILE`.
#
#   bench/webhooks.sh > /tmp/webhooks.out && python3 bench/ab_table.py /tmp/webhooks.out
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-10}; MODE=${MODE:-all}; PORT=${PORT:-18085}; RECEIVER_PORT=${RECEIVER_PORT:-18086}
HEARTH=${HEARTH:-target/release/hearth}
BENCH=${BENCH:-target/release/hearth-bench}
ADDR=127.0.0.1:$PORT
say() { echo "webhooks: $*" >&2; }
# A receiver that answers 200 to every POST on kept-alive connections, cheaply.
"$BENCH" --addr "127.0.0.1:$RECEIVER_PORT" --scenario receive &
RECEIVER=$!
trap 'kill $RECEIVER 2>/dev/null || true' EXIT
EVENTS=""
HOOKS=admin/webhooks
[ "$MODE" = scan ] && HOOKS=me/webhooks
run() { # run <label> <with a webhook: 0|1>
  local data pid token
  data=$(mktemp -d)
  echo "correct horse" | DATA_DIR="$data" "$HEARTH" user create boss --password-stdin >/dev/null
  HOST=127.0.0.1 PORT=$PORT DATA_DIR="$data" RUST_LOG=warn ADMIN_USERS=boss WEBHOOK_ALLOW_PRIVATE=1 \
  SIGNUPS_PER_IP=100000000 LOGINS_PER_IP=100000000 LOGINS_PER_USER=100000000 \
  MAX_REQUESTS_PER_SECOND=100000000 MAX_CONNECTIONS_PER_IP=1000000 MAX_CONNECTIONS_PER_USER=1000000 \
    "$HEARTH" >/dev/null 2>&1 &
  pid=$!
  "$BENCH" --addr "$ADDR" --scenario ready --since-ns "$(date +%s%N)" >/dev/null
  local extra=()
  if [ "$2" = 1 ] && [ "$MODE" = one ]; then
    extra=(--hook "http://127.0.0.1:$RECEIVER_PORT/hook")
  elif [ "$2" = 1 ]; then
    token=$(curl -s -X POST "http://$ADDR/v1/login" -d '{"username":"boss","password":"correct horse"}' \
      -H 'Content-Type: application/json' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    curl -s -o /dev/null -X POST "http://$ADDR/v1/$HOOKS" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d "{\"url\":\"http://127.0.0.1:$RECEIVER_PORT/hook\"$EVENTS}"
  fi
  "$BENCH" --addr "$ADDR" --scenario writers --n 50 --secs "$SECS" "${extra[@]}" | sed "s/^{/{\"label\":\"$1\",/"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
for r in $(seq "$ROUNDS"); do
  say "round $r/$ROUNDS"
  run old 0
  run new 1
done
