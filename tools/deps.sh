#!/usr/bin/env bash
# Makes sure what one make target needs is on the machine, then checks it is usable.
#
#   tools/deps.sh lib      the library: a C compiler, Concurrency Kit, jemalloc (make, make lib)
#   tools/deps.sh test     lib + cmocka, g++, clang with its sanitizer and fuzzer runtimes, cmake,
#                          pkg-config, Doxygen, libabigail (make test and the sanitizer,
#                          fault-injection and fuzz targets; the install test builds an example
#                          with pkg-config and CMake, check-abi compares the ABI with its record)
#   tools/deps.sh bench    lib + Google Benchmark and the peers (C-Thread-Pool, libuv, oneTBB,
#                          OpenMP, Boost.Asio; Go with x/sync and x/time; cargo and rustc with
#                          Debian's tokio and rayon sources), gnuplot and python3 for the report
#                          (make bench, bench-smoke)
#   tools/deps.sh proxy    lib + nginx, HAProxy and wrk, gnuplot and python3 (make bench-proxy);
#                          installed with service starts denied, so the packages' own system
#                          services (nginx on port 80) are not started
#   tools/deps.sh perf     bench + valgrind and perf (make perf)
#   tools/deps.sh docs     Doxygen (make docs, make man; make install installs the man pages)
#
# Step 1, on Debian and Ubuntu only: the missing packages are installed with apt-get when run as
# root; otherwise the exact command is printed and the script exits 1. dpkg is asked first, so a
# machine that has everything does nothing (no network). STRIX_NO_DEPS=1 skips this step (any
# other system skips it too).
# Step 2, everywhere: each header, library and program the target uses is probed with the
# compiler (CC, CXX) or the shell; every one that is missing is named, and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

purpose=${1:-}
CC=${CC:-cc}
CXX=${CXX:-c++}
JEMALLOC_PIC=${JEMALLOC_PIC:-/usr/lib/$(gcc -print-multiarch 2>/dev/null)/libjemalloc_pic.a}
THPOOL_SRC=${THPOOL_SRC:-/usr/share/cthreadpool/thpool.c}

# Debian/Ubuntu packages per purpose; "a|b" takes the first of a, b this release has.
lib_pkgs=(gcc make binutils libck-dev libjemalloc-dev)
test_pkgs=(g++ libcmocka-dev clang "libclang-rt-14-dev|libclang-common-14-dev" cmake pkg-config
           doxygen man-db abigail-tools)
bench_pkgs=(g++ libbenchmark-dev cthreadpool-dev libuv1-dev libtbb-dev libgomp1 libboost-dev
            golang-go golang-golang-x-sync-dev golang-golang-x-time-dev
            cargo rustc librust-tokio-dev librust-rayon-dev gnuplot-nox python3)
proxy_pkgs=("nginx-light|nginx" haproxy wrk gnuplot-nox python3)
perf_pkgs=(valgrind "linux-perf|linux-tools-generic")
docs_pkgs=(doxygen)

case "$purpose" in
  lib)     want=("${lib_pkgs[@]}") ;;
  test)    want=("${lib_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench)   want=("${lib_pkgs[@]}" "${bench_pkgs[@]}") ;;
  proxy)   want=("${lib_pkgs[@]}" "${proxy_pkgs[@]}") ;;
  perf)    want=("${lib_pkgs[@]}" "${bench_pkgs[@]}" "${perf_pkgs[@]}") ;;
  docs)    want=("${docs_pkgs[@]}") ;;
  *) echo "usage: $0 lib|test|bench|proxy|perf|docs" >&2; exit 2 ;;
esac

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# ---- step 1: packages ---------------------------------------------------------------------------
if [ "${STRIX_NO_DEPS:-0}" != 1 ] && command -v dpkg-query >/dev/null && command -v apt-get >/dev/null
then
  missing=()
  for spec in "${want[@]}"; do
    IFS='|' read -r -a alts <<< "$spec"
    have=0
    for p in "${alts[@]}"; do installed "$p" && { have=1; break; }; done
    [ "$have" -eq 1 ] && continue
    pick=${alts[0]}
    for p in "${alts[@]}"; do
      if apt-cache show "$p" >/dev/null 2>&1; then pick=$p; break; fi
    done
    missing+=("$pick")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    cmd="apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
      echo "strix: make needs these packages for '$purpose': ${missing[*]}" >&2
      echo "strix: run this as root, then make again (or STRIX_NO_DEPS=1 to skip this step):" >&2
      echo "    apt-get update && $cmd" >&2
      exit 1
    fi
    echo "strix: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Packages that bring a system service (nginx, HAProxy) would start it, listening on every
    # interface; a policy-rc.d that denies starts (Debian's invoke-rc.d mechanism) keeps them
    # installed but stopped. Only when there is none already, removed afterwards.
    if [ "$purpose" = proxy ] && [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      made_policy=1
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # The package lists may be missing or stale on a fresh machine: refresh once, then install.
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
      apt-get update -q
      apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    if [ "${made_policy:-0}" = 1 ]; then
      rm -f /usr/sbin/policy-rc.d
      trap - EXIT
    fi
  fi
fi

# ---- step 2: probes -----------------------------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
absent=()
# c_probe WHAT FLAGS -- HEADER...: a C program including each HEADER compiles and links with FLAGS
# (cxx_probe: the same in C++17).
probe_src() {
  local ext=$1 what=$2; shift 2
  local flags=() 
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  : > "$tmp/p.$ext"
  for h in "$@"; do printf '#include <%s>\n' "$h" >> "$tmp/p.$ext"; done
  printf 'int main(void) { return 0; }\n' >> "$tmp/p.$ext"
  local cc=$CC
  [ "$ext" = cc ] && cc="$CXX -std=c++17"
  $cc "$tmp/p.$ext" -o "$tmp/p" "${flags[@]}" >/dev/null 2>&1 || absent+=("$what")
}
c_probe() { probe_src c "$@"; }
cxx_probe() { probe_src cc "$@"; }
prog_probe() { command -v "$1" >/dev/null 2>&1 || absent+=("program $1"); }
# A daemon's program: on the PATH, or in /usr/sbin (not on every user's PATH).
sbin_probe() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || absent+=("program $1 (or /usr/sbin/$1)")
}
file_probe() { [ -f "$2" ] || absent+=("$1: $2"); }

probe_lib() {
  prog_probe "$CC"
  c_probe "header <ck_ring.h> and library -lck (Concurrency Kit)" -lck -- ck_ring.h ck_epoch.h
  c_probe "header <jemalloc/jemalloc.h> (jemalloc)" -- jemalloc/jemalloc.h
  file_probe "jemalloc's PIC archive (make JEMALLOC_PIC=path)" "$JEMALLOC_PIC"
  prog_probe ld; prog_probe objcopy; prog_probe ar; prog_probe nm
}
probe_test() {
  c_probe "header <cmocka.h> and library -lcmocka (cmocka)" -lcmocka -- \
    stdarg.h stddef.h setjmp.h cmocka.h
  prog_probe "$CXX"
  c_probe "AddressSanitizer and UBSan runtimes for $CC" -fsanitize=address,undefined -- stdio.h
  c_probe "ThreadSanitizer runtime for $CC" -fsanitize=thread -- stdio.h
  prog_probe clang
  printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);\n%s\n' \
    'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' \
    > "$tmp/f.c"
  clang -fsanitize=fuzzer,address "$tmp/f.c" -o "$tmp/f" >/dev/null 2>&1 ||
    absent+=("clang's libFuzzer runtime (clang -fsanitize=fuzzer)")
  prog_probe cmake; prog_probe pkg-config; prog_probe doxygen; prog_probe man
  prog_probe abidiff; prog_probe abidw
}
probe_bench() {
  prog_probe "$CXX"
  cxx_probe "header <benchmark/benchmark.h> and library -lbenchmark (Google Benchmark)" \
    -lbenchmark -pthread -- benchmark/benchmark.h
  c_probe "header <uv.h> and library -luv (libuv)" -luv -- uv.h
  cxx_probe "header <tbb/task_group.h> and library -ltbb (oneTBB)" -ltbb -- tbb/task_group.h
  c_probe "OpenMP (-fopenmp)" -fopenmp -- omp.h
  file_probe "C-Thread-Pool's source (make THPOOL_SRC=path)" "$THPOOL_SRC"
  cxx_probe "header <boost/asio/thread_pool.hpp> (Boost.Asio)" -pthread -- \
    boost/asio/thread_pool.hpp boost/asio/strand.hpp
  # The Go and Rust peers build offline from Debian's sources, with Debian's toolchains.
  file_probe "Go (golang-go)" /usr/bin/go
  file_probe "golang.org/x/sync/errgroup (golang-golang-x-sync-dev)" \
    /usr/share/gocode/src/golang.org/x/sync/errgroup/errgroup.go
  file_probe "golang.org/x/time/rate (golang-golang-x-time-dev)" \
    /usr/share/gocode/src/golang.org/x/time/rate/rate.go
  file_probe "Debian's cargo" /usr/bin/cargo; file_probe "Debian's rustc" /usr/bin/rustc
  [ -n "$(ls -d /usr/share/cargo/registry/tokio-1.* 2>/dev/null)" ] ||
    absent+=("tokio's source (librust-tokio-dev): /usr/share/cargo/registry/tokio-1.*")
  [ -n "$(ls -d /usr/share/cargo/registry/rayon-1.* 2>/dev/null)" ] ||
    absent+=("rayon's source (librust-rayon-dev): /usr/share/cargo/registry/rayon-1.*")
  prog_probe gnuplot; prog_probe python3
}
# The proxy benchmark's peers and load generator (tools/bench_proxy.sh).
probe_proxy() { sbin_probe nginx; sbin_probe haproxy; prog_probe wrk; prog_probe gnuplot; prog_probe python3; }
probe_perf() { prog_probe valgrind; prog_probe perf; }

case "$purpose" in
  lib)     probe_lib ;;
  test)    probe_lib; probe_test ;;
  bench)   probe_lib; probe_bench ;;
  proxy)   probe_lib; probe_proxy ;;
  perf)    probe_lib; probe_bench; probe_perf ;;
  docs)    prog_probe doxygen ;;
esac

if [ ${#absent[@]} -gt 0 ]; then
  echo "strix: '$purpose' cannot build here; missing:" >&2
  printf '    %s\n' "${absent[@]}" >&2
  exit 1
fi
