#!/usr/bin/env bash
# Every public header compiles alone: a one-line translation unit per header
# (include/strix.h and include/strix/*.h), as strict C11 and as C++17, warnings as errors.
#   tools/check-headers.sh            (CC and CXX from the environment; gcc and g++ by default)
# Also fails if a public header includes a dependency's header (Concurrency Kit, jemalloc):
# users compile against strix's headers and the C library only.
# Prints every header that fails with the compiler's message and exits 1 if one does, else 0.
set -u
cd "$(dirname "$0")/.."
cc=${CC:-gcc}
cxx=${CXX:-g++}
cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pedantic -Wstrict-prototypes
        -Wmissing-prototypes -Iinclude -fsyntax-only)
cxxflags=(-std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0 n=0
if grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](ck_|jemalloc)' include/strix.h include/strix/*.h; then
  echo "check-headers: public headers must not include Concurrency Kit or jemalloc headers"
  bad=1
fi
# A header that declares functions gives them C linkage in C++ too, or a C++ caller's calls
# would name symbols the library does not have.
for h in include/strix/*.h; do
  if grep -q '^SX_API' "$h" && ! grep -q 'extern "C"' "$h"; then
    echo "$h: declares SX_API functions without extern \"C\" for C++"; bad=1
  fi
done
for h in include/strix.h include/strix/*.h; do
  name=${h#include/}
  printf '#include <%s>\n' "$name" > "$tmp/one.c"
  cp "$tmp/one.c" "$tmp/one.cc"
  if ! out=$("$cc" "${cflags[@]}" "$tmp/one.c" 2>&1); then
    printf '%s: does not compile alone as C11:\n%s\n' "$h" "$out"; bad=1
  fi
  if ! out=$("$cxx" "${cxxflags[@]}" "$tmp/one.cc" 2>&1); then
    printf '%s: does not compile alone as C++17:\n%s\n' "$h" "$out"; bad=1
  fi
  n=$((n + 1))
done
if [ "$bad" -ne 0 ]; then
  echo "check-headers: a public header does not compile alone"
  exit 1
fi
echo "check-headers: $n headers compile alone (C11 and C++17)"
