#!/usr/bin/env bash
# Runs the benchmark suite and reports it. Nothing here writes a tracked file except `record`.
#   tools/bench.sh full    the default suite (make bench), about 2 minutes:
#                          build/bench/results.json (Google Benchmark JSON, plus "machine_load"),
#                          results.md (the table) and results.png (the chart)
#   tools/bench.sh smoke   every benchmark once at tiny sizes (make bench-smoke):
#                          build/bench-smoke.json, checked by bench_report.py --check
#   tools/bench.sh record  copies build/bench/results.{json,md,png} to perf/results/latest.*
#                          (make bench-record), the tracked copy that the README quotes
# Extra arguments after full/smoke go to strix-bench (e.g. --benchmark_filter=spawn).
# strix-bench runs under tools/bench_load.py, which samples the load average and /proc/stat
# before, during and after the run and records the CPU time strix-bench itself used; the report
# puts a warning at the top of the table and in the chart title when the machine was busy.
# Google Benchmark prints each row as it finishes (the progress); the report follows.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bench/strix-bench
dir=build/bench
mode=${1:-full}
shift || true
case "$mode" in
smoke)
  out=build/bench-smoke.json
  python3 tools/bench_load.py build/bench-smoke-load.json --interval 2 -- \
    "$bin" --smoke --benchmark_out="$out" --benchmark_out_format=json "$@"
  python3 tools/bench_report.py "$out" --load build/bench-smoke-load.json --check
  ;;
full)
  mkdir -p "$dir"
  out=$dir/results.json
  rm -f "$out" "$dir/results.md" "$dir/results.png" "$dir/load.json"
  echo "strix bench: about 2 minutes; each line below is one finished benchmark" >&2
  python3 tools/bench_load.py "$dir/load.json" -- \
    "$bin" --benchmark_out="$out" --benchmark_out_format=json "$@"
  python3 tools/bench_report.py "$out" --load "$dir/load.json" \
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
  echo "usage: tools/bench.sh full|smoke|record [strix-bench flags]" >&2
  exit 2
  ;;
esac
