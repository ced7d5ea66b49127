#!/usr/bin/env bash
# h) at scale, issue 28's floor: 10,000 accounts x 100 named documents plus one account's
# 1,000 (a ~1 GB data file, a minute or four to fill), `list` of the 1,000 timed; then three
# restarts, each timed to ready, its RSS at rest read, and a fresh 1,000-document account
# listed over the big tree. One JSON line per measurement.
#
#   bench/list-scale.sh target/release/hearth
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1; PORT=${PORT:-18093}; data=$(mktemp -d); B=${BENCH:-target/release/hearth-bench}
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$data"' EXIT
run() { HOST=127.0.0.1 PORT=$PORT DATA_DIR="$data" RUST_LOG=warn SIGNUPS_PER_IP=100000000 LOGINS_PER_IP=100000000 LOGINS_PER_USER=100000000 MAX_REQUESTS_PER_SECOND=100000000 MAX_CONNECTIONS_PER_IP=1000000 MAX_CONNECTIONS_PER_USER=1000000 "$BIN" >/dev/null 2>&1 & pid=$!; }
run; $B --addr 127.0.0.1:$PORT --scenario ready --since-ns "$(date +%s%N)" >/dev/null
$B --addr 127.0.0.1:$PORT --scenario list --n 1000 --accounts 10000 --pid $pid
echo "filled; restarting three times" >&2
kill -TERM $pid; wait $pid || true
echo "{\"data_bytes\":$(du -sb "$data" | cut -f1)}"
for i in 1 2 3; do
  t=$(date +%s%N); run; $B --addr 127.0.0.1:$PORT --scenario ready --since-ns "$t"
  sleep 1; echo "{\"rss_kb_at_rest\":$(awk '/VmRSS/{print $2}' /proc/$pid/status)}"
  $B --addr 127.0.0.1:$PORT --scenario list --n 1000 --accounts 0 --pid $pid
  kill -TERM $pid; wait $pid || true
done
