#!/usr/bin/env bash
# Runs the benchmark suite and reports it.
#   tools/bench.sh full    the default suite (make bench): perf/results/latest.{json,md,png}
#   tools/bench.sh smoke   every benchmark once at tiny sizes (make bench-smoke): build/bench-smoke.json
# Google Benchmark prints each row as it finishes (the progress); the report follows.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bench/strix-bench
mode=${1:-full}
shift || true
if [ "$mode" = smoke ]; then
  out=build/bench-smoke.json
  "$bin" --smoke --benchmark_out="$out" --benchmark_out_format=json "$@"
  python3 tools/bench_report.py "$out" --check
else
  mkdir -p perf/results
  out=perf/results/latest.json
  echo "strix bench: about 2 minutes; each line below is one finished benchmark" >&2
  "$bin" --benchmark_out="$out" --benchmark_out_format=json "$@"
  python3 tools/bench_report.py "$out" --markdown perf/results/latest.md --png perf/results/latest.png
fi
