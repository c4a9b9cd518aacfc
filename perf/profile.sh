#!/usr/bin/env bash
# Explains the spawn figures (make perf, after make bench-build):
#   1. perf stat over B1 spawn_many/strix (hardware counters where the machine has them, the
#      software ones - task clock, context switches, migrations, faults - everywhere);
#   2. callgrind's instruction counts (repeatable on a noisy machine: the same binary and input
#      give the same count) of one spawn + run on the local path, one task moved by stealing, and
#      one timer's add and expiry in the wheel (perf/callgrind.sh; perf/results/callgrind.txt
#      compares them with an earlier revision).
# Results go to perf/results/profile.txt as well as the terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
out=perf/results/profile.txt
mkdir -p perf/results
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
  echo "## callgrind: instructions per operation (lowest of 3 runs, range from the others)"
  perf/callgrind.sh | awk '{ d = $5; for (i = 6; i <= NF; i++) d = d " " $i;
    printf "%-10s %7s  [%s .. %s]  %s\n", $1, $2, $3, $4, d }'
} 2>&1 | tee "$out"
