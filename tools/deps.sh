#!/usr/bin/env bash
# Installs the Debian packages strix needs for one purpose, if any are missing.
#
#   tools/deps.sh test    build + unit/stress tests + sanitizers
#   tools/deps.sh bench   everything above, plus the benchmark peers and the chart tool
#
# As root it runs apt-get; otherwise it prints the exact command to run and exits 1.
# It checks with dpkg first, so a machine that has everything does nothing (no network).
set -euo pipefail

purpose=${1:-test}

base_pkgs=(build-essential pkg-config libck-dev libjemalloc-dev libcmocka-dev
           libasan8 libubsan1 libtsan2 clang libclang-rt-14-dev)
bench_pkgs=(g++ libbenchmark-dev cthreadpool-dev libuv1-dev libtbb-dev libgomp1
            gnuplot-nox valgrind linux-perf python3)

case "$purpose" in
  test)  want=("${base_pkgs[@]}") ;;
  bench) want=("${base_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "strix: missing Debian packages: ${missing[*]}" >&2
  echo "strix: run this as root, then run make again:" >&2
  echo "    apt-get update && $cmd" >&2
  exit 1
fi

echo "strix: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine: refresh once, then install.
if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -q
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
