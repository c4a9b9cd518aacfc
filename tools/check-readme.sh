#!/usr/bin/env bash
# README.md shows every example program whole. For each marker line
#   <!-- example: examples/NAME.c -->
# the ```c block that starts on the next line must equal that file byte for byte (nothing is
# ignored: whitespace, tabs, the last newline), and every examples/*.c must be named by exactly
# one marker. Prints each mismatch (a unified diff, file first, README block second) and exits 1
# if there is any, else prints one summary line and exits 0.
#   tools/check-readme.sh [README]      (README.md by default; paths are from the repository root)
set -u
cd "$(dirname "$0")/.."
readme=${1:-README.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -f "$readme" ] || { echo "check-readme: no $readme"; exit 1; }

# One pass over the README: block k goes to $tmp/k (each line with its newline, as in the file),
# and "k line path" to $tmp/list; a marker without a ```c fence right below it, or a block
# without its closing fence, goes to $tmp/bad.
awk -v dir="$tmp" '
  function flush_open() { if (state == 2) printf "%s: the block of the marker on line %d has no closing fence\n", FILENAME, line > (dir "/bad") }
  state == 2 && $0 == "```" { close(out); state = 0; next }
  state == 2 { print > out; next }
  state == 1 {
    if ($0 == "```c") { out = dir "/" k; printf "" > out; state = 2; next }
    printf "%s:%d: the marker is not followed by a ```c line\n", FILENAME, line > (dir "/bad")
    state = 0
  }
  /^<!-- example: [^ ]+ -->$/ {
    k++; line = NR; path = substr($0, 15, length($0) - 18)
    printf "%d %d %s\n", k, NR, path > (dir "/list"); state = 1; next
  }
  END { flush_open() }
' "$readme"
touch "$tmp/list" "$tmp/bad"

bad=0 blocks=0
while read -r k line path; do
  blocks=$((blocks + 1))
  if [ ! -f "$path" ]; then
    echo "$readme:$line: the marker names $path, which does not exist"; bad=1
  elif [ -f "$tmp/$k" ] && ! cmp -s "$path" "$tmp/$k"; then
    echo "$readme:$line: the block differs from $path:"
    diff -u --label "$path" --label "$readme:$line" "$path" "$tmp/$k"; bad=1
  fi
done < "$tmp/list"
if [ -s "$tmp/bad" ]; then cat "$tmp/bad"; bad=1; fi

shopt -s nullglob
examples=(examples/*.c)
for f in "${examples[@]}"; do
  n=$(awk -v p="$f" '$3 == p' "$tmp/list" | wc -l)
  if [ "$n" -ne 1 ]; then echo "$readme: $f is shown $n times (markers), not once"; bad=1; fi
done

if [ "$bad" -ne 0 ]; then
  echo "check-readme: FAILED"
  exit 1
fi
echo "check-readme: $blocks example blocks in $readme match their files; all ${#examples[@]} examples shown once"
