#!/usr/bin/env bash
# Every scenario of bench/run.sh for several builds of the server, alternated in one sitting:
# ROUNDS rounds, each running run.sh once (RUNS=1) per build in the order given, so drift in
# a noisy host lands on every build alike. Prints one table: each build's median (and runs)
# per scenario and metric, and each build's median over the first build's.
#
#   bench/alternate.sh old=/tmp/old-target/release/hearth new=target/release/hearth
#   ROUNDS=5 QUICK=1 bench/alternate.sh a=... b=... c=...
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
OUT=$(mktemp -d)
say() { echo "alternate: $*" >&2; }
for r in $(seq "$ROUNDS"); do
  for spec in "$@"; do
    label=${spec%%=*}; bin=${spec#*=}
    say "round $r/$ROUNDS: $label ($bin)"
    RUNS=1 HEARTH="$bin" RESULTS_OUT="$OUT/$label.$r.jsonl" bench/run.sh >/dev/null
  done
done
python3 bench/alternate_table.py "$OUT" "$@"
