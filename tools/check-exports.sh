#!/usr/bin/env bash
# The exported names agree: the SX_API declarations of the public headers, the explicit list of
# the version script src/strix.map, and what the built libraries define.
#   tools/check-exports.sh [BUILD_DIR]      (default build: BUILD_DIR/libstrix.so and .a)
# Fails (exit 1, every problem printed) when
#   - src/strix.map's global list is not sorted (LC_ALL=C) or lists a name twice;
#   - a name declared SX_API in include/strix.h or include/strix/*.h is not in the list;
#   - a listed name is declared SX_API nowhere (a stale entry);
#   - a listed name is not defined in libstrix.so (nm -D), or libstrix.so exports an sx_ name
#     the list does not have;
#   - libstrix.a defines a global sx_ name (not sx__) that the list does not have.
set -u
cd "$(dirname "$0")/.."
b=${1:-build}
so=$b/libstrix.so
ar=$b/libstrix.a
export LC_ALL=C
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0

# SX_API <type> name( or SX_API extern <type> name; (a declaration may span lines).
cat include/strix.h include/strix/*.h |
  perl -0ne 'while (/\bSX_API\b[^;{]*?\b(sx_[a-z0-9_]+)\s*[(;]/g) { print "$1\n" }' |
  sort -u > "$tmp/api"
sed -n '/global:/,/local:/p' src/strix.map > "$tmp/global"
sed -n 's/^[[:space:]]*\(sx_[A-Za-z0-9_]*\);[[:space:]]*$/\1/p' "$tmp/global" > "$tmp/map"
# only_in A B FORMAT: each name in the sorted list A that B lacks, printed through FORMAT (one %s);
# any such name fails the check.
only_in() {
  while read -r n; do
    printf "$3\n" "$n"; bad=1
  done < <(comm -23 "$1" "$2")
}
if grep -q '[*?]' "$tmp/global"; then
  echo "src/strix.map: the global list uses a pattern; list every name"; bad=1
fi
if ! sort -c "$tmp/map" 2>/dev/null ||
   [ "$(sort -u "$tmp/map" | wc -l)" -ne "$(wc -l < "$tmp/map")" ]; then
  echo "src/strix.map: the global list is not sorted (LC_ALL=C) or has a name twice"; bad=1
fi
sort -u "$tmp/map" > "$tmp/map.sorted"
only_in "$tmp/api" "$tmp/map.sorted" "src/strix.map: %s is declared SX_API but not listed"
only_in "$tmp/map.sorted" "$tmp/api" "src/strix.map: %s is listed but declared SX_API in no public header"

if [ ! -e "$so" ] || [ ! -e "$ar" ]; then
  echo "check-exports: $so or $ar is missing (make lib)"; exit 1
fi
nm -D --defined-only "$so" | awk '$3 ~ /^sx_/ {sub(/@.*/, "", $3); print $3}' | sort -u > "$tmp/so"
only_in "$tmp/map.sorted" "$tmp/so" "$so: does not define the listed %s"
only_in "$tmp/so" "$tmp/map.sorted" "$so: exports %s, which src/strix.map does not list"
nm -g --defined-only "$ar" 2>/dev/null | awk 'NF == 3 && $3 ~ /^sx_[a-z]/ {print $3}' | sort -u > "$tmp/ar"
only_in "$tmp/ar" "$tmp/map.sorted" \
  "$ar: exports %s, which src/strix.map does not list (make it static, sx__, or SX_API)"

if [ "$bad" -ne 0 ]; then
  echo "check-exports: headers, src/strix.map and the libraries disagree"
  exit 1
fi
echo "check-exports: ok ($(wc -l < "$tmp/map.sorted") names; headers, src/strix.map, libraries agree)"
