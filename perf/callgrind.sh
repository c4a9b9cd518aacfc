#!/usr/bin/env bash
# Callgrind's instruction counts for three paths (deterministic: the same binary and input give
# the same count, whatever else the machine is doing):
#   spawn  one spawn + run on the local path (perf/spawn_cost.c: 1 worker, 100,000 tasks);
#   steal  one task moved by stealing (perf/steal_cost.c: 2 workers, 10 rounds of 2,000 tasks
#          spawned on one worker and all stolen by the other, after a warm-up round);
#   wheel  one timer's add and expiry in the single-owner wheel, cascades included
#          (perf/wheel_cost.c: 100,000 timers, 1 ms .. 60 s, one advance past them all);
#          wheel_add is the add's share.
# Each figure is (count with the work - count without it) / the work done, the steal figure
# divided by the tasks sx_pool_stats counts as stolen. Every count is taken RUNS times (default
# 3) and the lowest and highest are printed, so the spread shows.
#
#   perf/callgrind.sh [ROOT]
# builds the programs of this checkout's perf/ against ROOT/include and ROOT/build/libstrix.a
# (ROOT defaults to this checkout; any strix revision with the same public API will do) and
# prints one line per figure: "name value min max detail".
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "${1:-$here}" && pwd)
runs=${RUNS:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for p in spawn_cost steal_cost wheel_cost; do
  cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g -I"$root/include" "$here/perf/$p.c" \
     "$root/build/libstrix.a" -lck -lpthread -ldl -lm -o "$out/$p"
done

# count PROGRAM ARGS...: the lowest and highest of $runs counts, "min max"; the program's own
# output (steal_cost's counters) goes to $out/stdout.
count() {
  local lo= hi= c i
  for ((i = 0; i < runs; i++)); do
    c=$(valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file=/dev/null \
          --log-file="$out/log" "$out/$1" "${@:2}" > "$out/stdout" &&
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/log")
    [ -n "$c" ] || { echo "callgrind.sh: no count from $*" >&2; cat "$out/log" >&2; exit 1; }
    if [ -z "$lo" ] || [ "$c" -lt "$lo" ]; then lo=$c; fi
    if [ -z "$hi" ] || [ "$c" -gt "$hi" ]; then hi=$c; fi
  done
  echo "$lo $hi"
}

# figure NAME WORK "full_min full_max" "base_min base_max" DETAIL: per unit of work, from the
# lowest counts, with the range the other counts allow.
figure() {
  local flo fhi blo bhi
  read -r flo fhi <<< "$3"
  read -r blo bhi <<< "$4"
  awk -v n="$1" -v w="$2" -v flo="$flo" -v fhi="$fhi" -v blo="$blo" -v bhi="$bhi" -v d="$5" \
    'BEGIN { printf "%s %.1f %.1f %.1f %s\n", n, (flo - blo) / w, (flo - bhi) / w,
             (fhi - blo) / w, d }'
}

spawn_n=100000
figure spawn $spawn_n "$(count spawn_cost $spawn_n)" "$(count spawn_cost 0)" \
  "per spawn + run, local path (1 worker, $spawn_n tasks)"

steal_n=2000 steal_r=10
full=$(count steal_cost $steal_n $steal_r); full_out=$(cat "$out/stdout")
base=$(count steal_cost $steal_n 0); base_out=$(cat "$out/stdout")
stolen() { sed -n 's/.*stolen=\([0-9]*\).*/\1/p' <<< "$1"; }
steals() { sed -n 's/.*steals=\([0-9]*\).*/\1/p' <<< "$1"; }
grep -q 'roles=1' <<< "$full_out$base_out" ||
  echo "callgrind.sh: steal_cost's workers swapped roles: its count may vary" >&2
moved=$(( $(stolen "$full_out") - $(stolen "$base_out") ))
ops=$(( $(steals "$full_out") - $(steals "$base_out") ))
figure steal $moved "$full" "$base" \
  "per task stolen (2 workers, $moved tasks stolen in $ops steal operations)"

wheel_n=100000
figure wheel $wheel_n "$(count wheel_cost $wheel_n)" "$(count wheel_cost 0)" \
  "per timer added and expired, cascades included ($wheel_n timers, 1 ms .. 60 s)"
figure wheel_add $wheel_n "$(count wheel_cost $wheel_n add)" "$(count wheel_cost 0 add)" \
  "of which the add (init + sx_wheel_add)"
