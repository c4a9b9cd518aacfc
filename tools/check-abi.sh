#!/usr/bin/env bash
# The shared library's ABI against the recorded one (abi/libstrix.abi), with libabigail.
#   tools/check-abi.sh BUILD_DIR            compare build/libstrix.so.<version> with the record
#   tools/check-abi.sh BUILD_DIR --record   write the record from the built library
# Within a major version the ABI only grows (strix/error.h, "Growing structs"): functions may be
# added, nothing may be removed or changed. Added functions pass; a removed function, a changed
# signature, or a public struct whose size or layout moved fails, with abidiff's report. A
# deliberate compatible change (a field carved out of a struct's reserved words) is recorded with
# `make abi-record` and named in CHANGELOG.md. Needs the library built with debug information
# (-g, as the default CFLAGS have it).
set -euo pipefail
cd "$(dirname "$0")/.."
b=${1:?usage: $0 BUILD_DIR [--record]}
record=abi/libstrix.abi
so=$(readlink -f "$b/libstrix.so")
if ! readelf -S "$so" | grep -q '\.debug_info'; then
  echo "check-abi: $so has no debug information: build it with -g (the default CFLAGS)" >&2
  exit 1
fi
if [ "${2:-}" = --record ]; then
  abidw --headers-dir include --drop-private-types --no-corpus-path --no-comp-dir-path --out-file "$record" "$so"
  echo "check-abi: recorded the ABI of $(basename "$so") in $record"
  exit 0
fi
rc=0
out=$(abidiff --no-added-syms --headers-dir2 include "$record" "$so") || rc=$?
if [ "$rc" -ne 0 ]; then
  printf '%s\n' "$out"
  echo "check-abi: the ABI of $(basename "$so") differs from $record (abidiff status $rc):" \
       "removals and changes break programs built against an earlier 0.x release"
  exit 1
fi
n=$(grep -c "<elf-symbol name='sx_" "$record" || true)
echo "check-abi: $(basename "$so") keeps the recorded ABI ($n functions; additions allowed)"
