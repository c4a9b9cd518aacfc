#!/usr/bin/env bash
# perf/callgrind.sh's figures for an earlier revision and for this checkout, side by side, in
# perf/results/callgrind.txt.
#
#   perf/compare.sh REV
# checks REV out in a temporary worktree, builds its library there (make lib), builds this
# checkout's library too, runs this checkout's perf programs against both, and removes the
# worktree. The programs use the public API only, so any revision whose headers declare the
# same functions will do.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: perf/compare.sh REV}
before=$(git rev-parse --short=7 "$rev")
after=$(git rev-parse --short=7 HEAD)
dirty=$(git diff --quiet HEAD -- src include Makefile || echo " + uncommitted changes")
wt=$(mktemp -d /tmp/strix-before.XXXXXX)
rmdir "$wt"
git worktree add --detach "$wt" "$before" >/dev/null
trap 'git worktree remove --force "$wt"' EXIT

make -C "$wt" --no-print-directory lib >/dev/null
make --no-print-directory lib >/dev/null
perf/callgrind.sh "$wt" > "$wt/before.txt"
perf/callgrind.sh > "$wt/after.txt"

out=perf/results/callgrind.txt
{
  echo "# callgrind instruction counts, $(date -u +%Y-%m-%d), perf/compare.sh $rev"
  echo "# before: $before ($(git log -1 --format=%s "$before" | cut -c1-60))"
  echo "# after:  $after$dirty ($(git log -1 --format=%s HEAD | cut -c1-60))"
  echo "# The same programs (perf/*_cost.c) built against each library; lowest of 3 runs, the"
  echo "# range the other runs allow in brackets (perf/callgrind.sh explains each scenario)."
  echo
  printf '%-10s %-20s %-20s %s\n' scenario "before $before" "after $after" "instructions"
  awk 'function cell(f) { return sprintf("%s [%s..%s]", f[2], f[3], f[4]) }
       FNR == NR { split($0, f, " "); b[$1] = cell(f); next }
       { split($0, f, " "); d = $5; for (i = 6; i <= NF; i++) d = d " " $i;
         printf "%-10s %-20s %-20s %s\n", $1, ($1 in b) ? b[$1] : "-", cell(f), d }' \
    "$wt/before.txt" "$wt/after.txt"
} > "$out"
cat "$out"
