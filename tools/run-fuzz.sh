#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time, starting from its kept corpus, and prints one
# closing line "tests: N passed, M failed" (one case per target: passed if it found nothing).
#   tools/run-fuzz.sh DIR SECONDS NAME...
# A target's kept corpus is tests/fuzz/corpus/NAME (read only here); what a run adds goes to
# DIR/corpus-NAME, and a crashing input to DIR/NAME-crash-*.
set -u
dir=$1; secs=$2; shift 2
passed=0; failed=0
for t in "$@"; do
  echo "=== $t (${secs}s)"
  kept=tests/fuzz/corpus/${t#fuzz_}
  work=$dir/corpus-$t
  mkdir -p "$work" "$kept"
  log=$(mktemp)
  "$dir/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/$t-" "$work" "$kept" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); echo "$t: ${execs:-0} executions, nothing found"
  else
    failed=$((failed + 1)); tail -60 "$log"; echo "$t: FAILED (exit $rc) after ${execs:-?} executions"
  fi
  rm -f "$log"
done
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
