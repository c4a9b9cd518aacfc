#!/usr/bin/env bash
# Runs test programs from one directory, each alone, and prints one closing line
# "N passed, M failed" counting the cmocka test cases of every program.
#   tools/run-tests.sh DIR NAME...
set -u
dir=$1; shift
passed=0; failed=0; broken=()
for t in "$@"; do
  echo "=== $t"
  log=$(mktemp)
  "$dir/$t" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  rm -f "$log"
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
  [ "$rc" -ne 0 ] && broken+=("$t (exit $rc)")
done
[ ${#broken[@]} -gt 0 ] && printf 'failing programs: %s\n' "${broken[*]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#broken[@]} -eq 0 ]
