# Sourced by the benchmark scripts: a fresh server around one command. Needs HEARTH, BENCH,
# PORT and ADDR set.

# with_server <command...>: starts Hearth on a fresh data dir with its per-client limits out
# of the way (a load generator is one client), runs the command with PID set to the server's,
# then stops it. Refuses to run against a server it did not start: a stale one left on the
# port (a bench killed midway) would be measured instead, and silently.
with_server() {
  local data pid
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "bench: something already listens on port $PORT (a server left by a killed bench?)" >&2
    return 1
  fi
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

# labelled <label> <bench args...>: one hearth-bench run, its JSON line labelled.
labelled() {
  local label=$1
  shift
  "$BENCH" --addr "$ADDR" "$@" | sed "s/^{/{\"label\":\"$label\",/"
}
