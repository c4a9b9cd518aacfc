#!/usr/bin/env bash
# Runs the benchmark suite and reports it. Nothing here writes a tracked file except `record`.
#   tools/bench.sh full    the default suite (make bench), about 4 minutes:
#                          build/bench/results.json (Google Benchmark JSON with the peer programs'
#                          results merged in, plus "machine_load"), results.md (the table) and
#                          results.png (the chart)
#   tools/bench.sh smoke   every benchmark once at tiny sizes (make bench-smoke):
#                          build/bench-smoke.json, checked by bench_report.py --check
#   tools/bench.sh record  copies build/bench/results.{json,md,png} to perf/results/latest.*
#                          (make bench-record), the tracked copy that the README quotes
# Extra arguments after full/smoke go to strix-bench (e.g. --benchmark_filter=spawn), except:
#   --workers=N     the worker count of every implementation, strix-bench's and the peer
#                   programs' alike (default: the online CPUs)
#   --peers=LIST    the peer programs to run, comma-separated names in build/bench/peers/
#                   (default go-bench,rust-bench; --peers= runs none)
# The measured command is tools/bench_all.sh: strix-bench, then each peer program
# (bench/peers/README.md), each writing its own JSON (full: build/bench/results-go.json,
# results-rust.json; smoke: build/bench-smoke-go.json, bench-smoke-rust.json); the report merges
# the peers' JSON into the one results file. A peer program missing fails the run before anything
# is measured (make bench-build builds them).
# It runs under tools/bench_load.py, which samples the load average and /proc/stat before, during
# and after the run and records the CPU time the programs used; the report puts a warning at the
# top of the table and in the chart title when the machine was busy.
# Each program prints one line per finished benchmark (the progress); the report follows.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build/bench
mode=${1:-full}
shift || true
workers=$(getconf _NPROCESSORS_ONLN)
peer_list=go-bench,rust-bench
args=()
for a in "$@"; do
  case "$a" in
  --workers=*) workers=${a#--workers=} ;;
  --peers=*) peer_list=${a#--peers=} ;;
  *) args+=("$a") ;;
  esac
done

# peers: bench_all.sh's --peer=PROGRAM=OUT.json for each program, OUT being PREFIX-<name less
# -bench>.json. Fails, naming each one, when a program is missing.
peers=()
peer_args() {
  local prefix=$1 p missing=0 names
  IFS=, read -ra names <<< "$peer_list"
  for p in "${names[@]}"; do
    [ -n "$p" ] || continue
    if [ ! -x "$dir/peers/$p" ]; then
      echo "bench: $dir/peers/$p is missing (make bench-build builds the peer programs)" >&2
      missing=1
    fi
    peers+=("--peer=$dir/peers/$p=$prefix-${p%-bench}.json")
  done
  return "$missing"
}

case "$mode" in
smoke)
  out=build/bench-smoke.json
  peer_args build/bench-smoke
  python3 tools/bench_load.py build/bench-smoke-load.json --interval 2 -- \
    tools/bench_all.sh --smoke --workers="$workers" --out="$out" "${peers[@]}" -- "${args[@]}"
  python3 tools/bench_report.py "$out" --load build/bench-smoke-load.json --peers "$out.peers" \
    --check
  ;;
full)
  mkdir -p "$dir"
  out=$dir/results.json
  peer_args "$dir/results"
  rm -f "$out" "$dir/results.md" "$dir/results.png" "$dir/load.json"
  echo "bench: about 4 minutes (strix-bench, then ${peer_list:-no peer program});" \
       "each line below is one finished benchmark" >&2
  python3 tools/bench_load.py "$dir/load.json" -- \
    tools/bench_all.sh --workers="$workers" --out="$out" "${peers[@]}" -- "${args[@]}"
  python3 tools/bench_report.py "$out" --load "$dir/load.json" --peers "$out.peers" \
    --markdown "$dir/results.md" --png "$dir/results.png"
  echo "bench: results in $dir/results.{json,md,png}; make bench-record copies them to perf/results/" >&2
  ;;
record)
  for x in json md png; do
    [ -f "$dir/results.$x" ] || { echo "bench-record: no $dir/results.$x (run make bench first)" >&2; exit 1; }
  done
  mkdir -p perf/results
  for x in json md png; do cp "$dir/results.$x" "perf/results/latest.$x"; done
  echo "bench-record: copied $dir/results.{json,md,png} to perf/results/latest.{json,md,png}" \
       "(tracked files: review with git diff and commit them)" >&2
  python3 tools/bench_report.py perf/results/latest.json --verdict
  ;;
*)
  echo "usage: tools/bench.sh full|smoke|record [--workers=N] [--peers=LIST] [strix-bench flags]" >&2
  exit 2
  ;;
esac
