#!/usr/bin/env bash
# check-install: installs the built library into fresh temporary prefixes and uses it the ways a C
# user would, then uninstalls.
#
#   tests/install/run.sh [PROGRAM.c...]     (make check-install [EXAMPLE=...])
#
# Programs: tests/install/consumer.c, plus the arguments, or else examples/pool.c when it exists.
# Steps, one line each ("ok"/"FAIL", with the step's log after a FAIL):
#   1. make install PREFIX=$tmp/prefix: exactly the expected files, modes and soname
#   2. pkg-config's answers for strix
#   3. each program built with pkg-config, shared (run via LD_LIBRARY_PATH, and via an rpath) and
#      static (cc -static with --static: no libstrix.so needed), and with CMake against
#      strix::strix and strix::strix_static (tests/install/CMakeLists.txt, which also checks
#      find_package's version rules); every binary must exit 0
#   4. man -M $prefix/share/man 3 sx_pool_create shows its contract
#   5. make uninstall leaves no file in the prefix and removes strix's directories
#   6. make install DESTDIR=$tmp/stage PREFIX=/usr: the same tree under $tmp/stage/usr, nothing
#      else; the staged tree used where it lies (relocated) by CMake and pkg-config --define-prefix;
#      make uninstall with the same DESTDIR empties it
# Ends with "check-install: N passed, M failed"; exits 1 on any failure. Temporary files go.
# The library must be built (make lib); the installs themselves build nothing.
set -u
caller_dir=$PWD
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
MAKE=${MAKE:-make}
CC=${CC:-cc}
export CC

# The inner makes get only the variables given here: an outer `make check-install LIBDIR=...`
# (through MAKEFLAGS) or a PREFIX in the environment must not send files elsewhere.
unset MAKEFLAGS MFLAGS DESTDIR PREFIX LIBDIR INCLUDEDIR MANDIR PKGCONFIGDIR CMAKEDIR
unset LD_LIBRARY_PATH PKG_CONFIG_SYSROOT_DIR CMAKE_PREFIX_PATH
imake() { "$MAKE" -s --no-print-directory "$@"; }

programs=(tests/install/consumer.c)
if [ $# -gt 0 ]; then
  for a in "$@"; do
    case $a in /*) programs+=("$a") ;; *) programs+=("$caller_dir/$a") ;; esac
  done
elif [ -f examples/pool.c ]; then
  programs+=(examples/pool.c)
fi

version=$(sed -n 's/^#define STRIX_VERSION_STRING "\(.*\)"/\1/p' include/strix/version.h)
if [ -z "$version" ] || [ ! -f "build/libstrix.so.$version" ] || [ ! -f build/libstrix.a ]; then
  echo "check-install: build the library first (make lib)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/strix-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0

# step NAME CMD...: runs CMD with its output in a log; prints ok, or FAIL and the log's tail.
step() {
  local name=$1; shift
  if "$@" >"$tmp/log" 2>&1; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; tail -n 40 "$tmp/log" | sed 's/^/     /'
  fi
}
fail() { echo "$*"; return 1; }

# The files an install must leave under a prefix, relative to it, with their kind and mode.
expected() {
  {
    echo "lib/libstrix.a f644"
    echo "lib/libstrix.so.$version f755"
    echo "lib/libstrix.so.0 l->libstrix.so.$version"
    echo "lib/libstrix.so l->libstrix.so.0"
    echo "include/strix.h f644"
    for h in include/strix/*.h; do echo "$h f644"; done
    echo "lib/pkgconfig/strix.pc f644"
    echo "lib/cmake/strix/strix-config.cmake f644"
    echo "lib/cmake/strix/strix-config-version.cmake f644"
    for m in build/docs/man/man3/*; do
      if [ -L "$m" ]; then echo "share/man/man3/${m##*/} l->$(readlink "$m")"
      elif [ -f "$m" ]; then echo "share/man/man3/${m##*/} f644"; fi
    done
  } | LC_ALL=C sort
}
# What is there: every file and link under $1, as expected() lists them.
present() {
  (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | while read -r f; do
     if [ -L "$f" ]; then echo "$f l->$(readlink "$f")"; else echo "$f f$(stat -c %a "$f")"; fi
   done) | LC_ALL=C sort
}
check_tree() { # DIR
  expected >"$tmp/want"; present "$1" >"$tmp/have"
  diff -u "$tmp/want" "$tmp/have" || fail "installed files differ from the expected ones"
  local so
  so=$(readelf -d "$1/lib/libstrix.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  [ "$so" = libstrix.so.0 ] || fail "soname is '$so', the link is libstrix.so.0"
}
# The file and link list must be empty, and strix's own directories gone.
check_empty() { # DIR
  present "$1" >"$tmp/have"
  [ ! -s "$tmp/have" ] || { cat "$tmp/have"; fail "left behind after uninstall"; }
  local d
  for d in include/strix lib/cmake/strix; do
    [ ! -e "$1/$d" ] || fail "directory $d left behind"
  done
}

needs_libstrix() { readelf -d "$1" | grep -q 'NEEDED.*\[libstrix\.so\.0\]'; }
run_bin() { timeout 30 "$@" || fail "$1 exited $?"; }

# ---- 1-2: a plain prefix ----------------------------------------------------------------------
p=$tmp/prefix
step "install PREFIX=<tmp>" imake install PREFIX="$p"
step "installed files, modes and soname" check_tree "$p"

export PKG_CONFIG_PATH=$p/lib/pkgconfig
pc_check() {
  local v c l s
  v=$(pkg-config --modversion strix) && c=$(pkg-config --cflags strix) &&
    l=$(pkg-config --libs strix) && s=$(pkg-config --static --libs strix) || return 1
  printf 'modversion: %s\ncflags: %s\nlibs: %s\nstatic libs: %s\n' "$v" "$c" "$l" "$s"
  [ "$v" = "$version" ] || fail "modversion $v, want $version"
  case " $c " in *" -I$p/include "*) ;; *) fail "cflags lack -I$p/include" ;; esac
  [ "$l" = "-L$p/lib -lstrix " ] || [ "$l" = "-L$p/lib -lstrix" ] || fail "libs: $l"
  local w
  for w in "-L$p/lib" -lstrix -lck -lpthread -ldl -lm; do
    case " $s " in *" $w "*) ;; *) fail "static libs lack $w" ;; esac
  done
}
step "pkg-config strix (version, cflags, libs, static libs)" pc_check

# ---- 3: the programs --------------------------------------------------------------------------
pc_shared() { # SRC OUT
  # shellcheck disable=SC2046
  "$CC" "$1" $(pkg-config --cflags strix) -o "$2" $(pkg-config --libs strix) &&
    needs_libstrix "$2" && LD_LIBRARY_PATH=$p/lib run_bin "$2"
}
pc_rpath() {
  local libdir; libdir=$(pkg-config --variable=libdir strix)
  # shellcheck disable=SC2046
  "$CC" "$1" $(pkg-config --cflags strix) -o "$2" $(pkg-config --libs strix) \
    -Wl,-rpath,"$libdir" && needs_libstrix "$2" && run_bin "$2"
}
pc_static() {
  # shellcheck disable=SC2046
  "$CC" -static "$1" $(pkg-config --static --cflags strix) -o "$2" \
    $(pkg-config --static --libs strix) || return 1
  ! needs_libstrix "$2" || fail "$2 needs libstrix.so"
  ! ldd "$2" 2>&1 | grep libstrix || fail "ldd finds libstrix"
  run_bin "$2"
}
cmake_build() { # PREFIX BUILDDIR
  local srcs=() s
  for s in "${programs[@]}"; do srcs+=("$(realpath "$s")"); done
  local IFS=';'
  cmake -S "$root/tests/install" -B "$2" -DCMAKE_PREFIX_PATH="$1" \
    -DSTRIX_PROGRAMS="${srcs[*]}" -DCMAKE_BUILD_TYPE=Release && cmake --build "$2" -j 2
}
cmake_shared() { needs_libstrix "$1" && LD_LIBRARY_PATH=${2:-} run_bin "$1"; }
cmake_static() { ! needs_libstrix "$1" || fail "$1 needs libstrix.so"; run_bin "$1"; }

mkdir -p "$tmp/bin"
for src in "${programs[@]}"; do
  if [ ! -f "$src" ]; then step "program $src" fail "no such file: $src"; continue; fi
  n=$(basename "$src" .c)
  step "pkg-config shared, LD_LIBRARY_PATH: $src" pc_shared "$src" "$tmp/bin/$n-pc"
  step "pkg-config shared, rpath: $src" pc_rpath "$src" "$tmp/bin/$n-rpath"
  step "pkg-config --static (cc -static): $src" pc_static "$src" "$tmp/bin/$n-static"
done
step "cmake: find_package(strix 0.1), version rules, build" cmake_build "$p" "$tmp/cmake"
for src in "${programs[@]}"; do
  n=$(basename "$src" .c)
  step "cmake strix::strix: $src" cmake_shared "$tmp/cmake/${n}_shared"
  step "cmake strix::strix_static: $src" cmake_static "$tmp/cmake/${n}_static"
done

# ---- 4: man pages -----------------------------------------------------------------------------
# The page must carry the function's contract, not only its name.
man_check() { man -M "$p/share/man" -P cat 3 sx_pool_create | grep -q 'sx_pool_create - start a pool'; }
step "man -M <prefix>/share/man 3 sx_pool_create" man_check

# ---- 5: uninstall -----------------------------------------------------------------------------
step "uninstall PREFIX=<tmp>" imake uninstall PREFIX="$p"
step "nothing left in the prefix" check_empty "$p"

# ---- 6: a staged install ----------------------------------------------------------------------
d=$tmp/stage
staged_tree() {
  check_tree "$d/usr" || return 1
  local other; other=$(cd "$d" && find . -mindepth 1 -maxdepth 1 ! -name usr)
  [ -z "$other" ] || fail "outside DESTDIR/usr: $other"
  grep -qx 'prefix=/usr' "$d/usr/lib/pkgconfig/strix.pc" || fail "strix.pc's prefix is not /usr"
}
staged_use() {
  cmake_build "$d/usr" "$tmp/cmake-staged" || return 1
  cmake_shared "$tmp/cmake-staged/consumer_shared" "$d/usr/lib" &&
    cmake_static "$tmp/cmake-staged/consumer_static" || return 1
  # shellcheck disable=SC2046
  "$CC" "$root/tests/install/consumer.c" \
    $(PKG_CONFIG_PATH=$d/usr/lib/pkgconfig pkg-config --define-prefix --cflags strix) \
    -o "$tmp/bin/consumer-staged" \
    $(PKG_CONFIG_PATH=$d/usr/lib/pkgconfig pkg-config --define-prefix --libs strix) &&
    LD_LIBRARY_PATH=$d/usr/lib run_bin "$tmp/bin/consumer-staged"
}
step "install DESTDIR=<tmp> PREFIX=/usr" imake install DESTDIR="$d" PREFIX=/usr
step "staged files under DESTDIR/usr only" staged_tree
step "staged tree used where it lies (CMake, pkg-config --define-prefix)" staged_use
step "uninstall DESTDIR=<tmp> PREFIX=/usr" imake uninstall DESTDIR="$d" PREFIX=/usr
step "nothing left in DESTDIR" check_empty "$d/usr"

echo "check-install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
