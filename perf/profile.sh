#!/usr/bin/env bash
# Explains the spawn figures (make perf, after make bench-build):
#   1. perf stat over B1 spawn_many/strix (hardware counters where the machine has them, the
#      software ones - task clock, context switches, migrations, faults - everywhere);
#   2. callgrind's instruction count of one spawn + run on the local path (repeatable on a noisy
#      machine: the same binary and input give the same count).
# Results go to perf/results/profile.txt as well as the terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
out=perf/results/profile.txt
mkdir -p perf/results build/perf
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g -Iinclude perf/spawn_cost.c build/libstrix.a -lck -lpthread -ldl -lm \
   -o build/perf/spawn_cost
{
  echo "# strix profile $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs"
  echo
  echo "## perf stat: spawn_many/strix (1,000,000 tasks, 5 repetitions)"
  events=task-clock,context-switches,cpu-migrations,page-faults
  if perf stat -e instructions true >/dev/null 2>&1 &&
     ! perf stat -e instructions true 2>&1 | grep -q "not supported"; then
    events=$events,cycles,instructions,cache-misses,branch-misses
  else
    echo "(hardware counters not supported on this machine: software counters only)"
  fi
  perf stat -e "$events" build/bench/strix-bench --benchmark_filter='spawn_many/strix/' \
    --benchmark_repetitions=5 2>&1 | grep -vE '^(Run|CPU|  L|Load|\*\*\*|---)' || true
  echo
  echo "## callgrind: instructions per spawn + run, local path (1 worker)"
  n=100000
  count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null build/perf/spawn_cost "$1" 2>&1 |
      sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
  }
  base=$(count 0)
  full=$(count $n)
  echo "baseline (0 tasks): $base instructions"
  echo "$n tasks:          $full instructions"
  echo "per spawn + run:    $(( (full - base) / n )) instructions"
} 2>&1 | tee "$out"
