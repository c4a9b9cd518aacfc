#!/usr/bin/env bash
# The one command a benchmark run measures (tools/bench.sh runs it under tools/bench_load.py, which
# samples the machine around it): strix-bench, then each peer program in turn, all with the same
# mode and worker count, so the load verdict covers every implementation in the run.
#
#   tools/bench_all.sh --out=RESULTS.json --workers=N [--smoke] [--peer=PROGRAM=OUT.json]...
#                      [-- strix-bench flags]
#
# strix-bench writes RESULTS.json; each peer program (bench/peers/README.md: [--smoke]
# [--workers=N] --out=FILE) writes its OUT.json. RESULTS.json.peers gets one line per peer program,
# "PROGRAM STATUS OUT.json", which tools/bench_report.py --peers reads to merge the peers' results
# into RESULTS.json (a peer that exited nonzero is merged too, and its failure is an error there).
# Exits with strix-bench's status when that failed (then no peer runs: there is nothing to compare
# against), 0 otherwise.
set -uo pipefail
out= workers= smoke=()
peers=()
while [ $# -gt 0 ]; do
  case "$1" in
  --out=*) out=${1#--out=} ;;
  --workers=*) workers=${1#--workers=} ;;
  --smoke) smoke=(--smoke) ;;
  --peer=*) peers+=("${1#--peer=}") ;;
  --) shift; break ;;
  *) echo "bench_all: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] && [ -n "$workers" ] || { echo "bench_all: --out and --workers are required" >&2; exit 2; }
manifest=$out.peers
rm -f "$out" "$manifest"
for p in "${peers[@]}"; do rm -f "${p#*=}"; done

build/bench/strix-bench "${smoke[@]}" --workers="$workers" --benchmark_out="$out" \
  --benchmark_out_format=json "$@"
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "bench_all: strix-bench exited with status $rc" >&2
  exit "$rc"
fi
: > "$manifest"
for p in "${peers[@]}"; do
  prog=${p%%=*} file=${p#*=}
  echo "bench: $(basename "$prog") ${smoke[*]:+${smoke[*]} }--workers=$workers (one line per finished benchmark)" >&2
  "$prog" "${smoke[@]}" --workers="$workers" --out="$file"
  st=$?
  [ "$st" -eq 0 ] || echo "bench_all: $(basename "$prog") exited with status $st" >&2
  echo "$(basename "$prog") $st $file" >> "$manifest"
done
exit 0
