# strix - the one build entry point. GNU make. `make help` lists the targets.
#
# Each target that builds first runs tools/deps.sh for its purpose (lib, test, bench, perf, docs): on Debian and Ubuntu it installs what is missing (as root; otherwise it prints the
# apt-get command and stops), and everywhere it probes the headers, libraries and programs the
# target uses and names each one that is missing. STRIX_NO_DEPS=1 skips the installing step.

# make's built-in defaults (cc, g++) give way to gcc and g++; CC=clang etc. on the command line or
# in the environment win.
ifeq ($(origin CC),default)
CC := gcc
endif
ifeq ($(origin CXX),default)
CXX := g++
endif
B        := build
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null)
JEMALLOC_PIC ?= /usr/lib/$(MULTIARCH)/libjemalloc_pic.a

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CSTD     := -std=c11 -D_GNU_SOURCE
CFLAGS   ?= -O2 -g
ALL_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -Iinclude -Isrc -pthread
LIBS     := -lck -lpthread -ldl -lm

# One folder per layer, lowest first; a layer includes and calls only the layers below it
# (src/README, checked by tools/check-layers.sh). The allocator (src/base/alloc_*.c) is chosen per
# build: jemalloc for the release library, the C library's for the sanitizers.
BASE_SRCS   := src/base/wait.c src/base/thread.c src/base/error.c src/base/clock.c
EXEC_SRCS   := src/exec/pool.c src/exec/worker.c src/exec/node.c src/exec/epoch.c \
               src/exec/blocking.c
TIME_SRCS   := src/time/wheel.c src/time/timer.c
CANCEL_SRCS := src/cancel/breaker.c src/cancel/notifier.c src/cancel/signal.c src/cancel/retry.c
IO_SRCS     := src/io/reactor.c src/io/net.c
FLOW_SRCS   := src/flow/promise_core.c src/flow/promise_retry.c src/flow/promise_comb.c \
               src/flow/promise_wait.c src/flow/promise_settle.c src/flow/promise_io.c \
               src/flow/promise_blocking.c src/flow/fanout.c \
               src/flow/join.c src/flow/strand.c
GUARD_SRCS  := src/guard/sem.c src/guard/ratelimit.c src/guard/circuit.c src/guard/registry.c \
               src/guard/adaptive.c src/guard/chaos.c src/guard/hedge.c src/guard/metrics.c \
               src/guard/events.c src/guard/pipeline.c src/guard/group.c
LIB_SRCS := $(BASE_SRCS) $(EXEC_SRCS) $(TIME_SRCS) $(CANCEL_SRCS) $(IO_SRCS) $(FLOW_SRCS) \
            $(GUARD_SRCS)
# Internal headers, for the rules that compile the sources straight into a test.
SRC_HDRS := $(wildcard src/*.h src/*/*.h)
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
STRESS_TESTS := $(patsubst tests/stress/%.c,%,$(wildcard tests/stress/stress_*.c))
# C++ programs using the public headers (release build only: they test the headers, not races).
CXX_TESTS := $(patsubst tests/cxx/%.cc,%,$(wildcard tests/cxx/test_*.cc))
# The seeds' upstream test suites ported to C (public API, like the unit tests).
COMPAT_TESTS := $(patsubst tests/compat/%.c,%,$(wildcard tests/compat/compat_*.c))
# Fault injection: each program fails allocations, thread and key creations in turn.
INJECT_TESTS := $(patsubst tests/inject/%.c,%,$(wildcard tests/inject/inject_*.c))
# White-box tests: each compiles one library source into itself (WHITE_SRC_<test>, to reach its
# static functions and structures) and links the other sources, with the C library allocator as
# the sanitizer builds (the archive keeps only the public symbols).
WHITE_TESTS := $(patsubst tests/white/%.c,%,$(wildcard tests/white/white_*.c))
WHITE_LIB_SRCS := $(LIB_SRCS) src/base/alloc_libc.c
WHITE_SRC_white_deque := src/exec/worker.c
WHITE_SRC_white_wheel := src/time/wheel.c
WHITE_SRC_white_hedge := src/guard/hedge.c
WHITE_SRC_white_clock := src/base/clock.c
# libFuzzer targets comparing a module with a reference model on a virtual clock.
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all lib tests test check-white check-layers check-headers check-exports check-abi abi-record bench bench-build bench-smoke check-asan check-tsan check-inject fuzz \
        stress clean perf help

# Targets that build first make sure their dependencies are there (tools/deps.sh), then build in
# a sub-make, so a parallel make never compiles before the packages are installed.
DEPS = CC="$(CC)" CXX="$(CXX)" JEMALLOC_PIC="$(JEMALLOC_PIC)" THPOOL_SRC="$(THPOOL_SRC)" tools/deps.sh
all: lib

help:
	@echo 'strix make targets (GNU make; STRIX_NO_DEPS=1 skips installing packages):'
	@echo '  make, make lib     build/libstrix.a and build/libstrix.so (needs a C compiler, ck, jemalloc)'
	@echo '  make test          build and run every test: unit, white-box, compat, C++, stress,'
	@echo '                     the examples, the install test, the proxy smoke test (check-proxy)'
	@echo '                     and the header, layer, export checks'
	@echo '  make check-asan    the tests under AddressSanitizer + UndefinedBehaviorSanitizer'
	@echo '  make check-tsan    the tests under ThreadSanitizer'
	@echo '  make check-inject  every allocation, thread and key creation failed in turn (LSan)'
	@echo '  make fuzz          libFuzzer targets against reference models, FUZZ_SECONDS each'
	@echo '  make stress        the stress programs, longer (STRESS=n, TSAN_STRESS=n)'
	@echo '  make examples      build examples/ (make check-examples runs them)'
	@echo '  make check-proxy   the proxy example (examples/proxy) behind faulty upstreams: its answers'
	@echo '                     and --stats (check-proxy-asan, check-proxy-tsan: under the sanitizers)'
	@echo '  make bench         the benchmark suite against the peers: build/bench/results.*'
	@echo '  make bench-smoke   every benchmark once at tiny sizes, results checked'
	@echo '  make bench-record  copy the last make bench results into perf/results/'
	@echo '  make bench-proxy   the proxy example against nginx and HAProxy under wrk: build/bench/proxy.*'
	@echo '  make perf          perf stat and callgrind instruction counts (valgrind, perf)'
	@echo '  make docs          the API reference: build/docs/html/ and man pages build/docs/man/'
	@echo '  make install       PREFIX=/usr/local DESTDIR= LIBDIR= INCLUDEDIR= MANDIR=; make uninstall'
	@echo '  make clean         remove build/'

# ---- the library ------------------------------------------------------------------------------
# Release objects are prelinked with jemalloc's PIC archive into one relocatable object, then every
# symbol but the public sx_ ones is made local: the archive and the shared library carry a private
# jemalloc and never replace the application's malloc.
REL_OBJS := $(patsubst src/%.c,$(B)/obj/%.o,$(LIB_SRCS) src/base/alloc_jemalloc.c)

# Each object depends on the headers it includes, as the compiler lists them (-MMD -MP).
# Objects mirror the source tree: build/obj/<layer>/x.o.
$(B)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
-include $(REL_OBJS:.o=.d)

$(B)/obj $(B)/tests $(B)/bench $(B)/asan $(B)/tsan $(B)/inject $(B)/fuzz:
	mkdir -p $@

$(B)/strix.o: $(REL_OBJS)
	ld -r -o $(B)/strix-prelink.o $(REL_OBJS) $(JEMALLOC_PIC)
	nm -g --defined-only $(B)/strix-prelink.o | awk '$$3 ~ /^sx_[a-z]/ {print $$3}' > $(B)/exports.txt
	objcopy --keep-global-symbols=$(B)/exports.txt $(B)/strix-prelink.o $@

$(B)/libstrix.a: $(B)/strix.o
	rm -f $@ && ar rcs $@ $<

# The release, from include/strix/version.h; the soname's number is the major version's, 0 for
# every 0.x release (the ABI only grows within it: strix/error.h, "Growing structs").
VERSION := $(shell sed -n 's/^\#define STRIX_VERSION_STRING "\(.*\)"/\1/p' include/strix/version.h)
SOVERSION := $(word 1,$(subst ., ,$(VERSION)))
$(B)/libstrix.so: $(B)/strix.o src/strix.map include/strix/version.h
	$(CC) -shared -o $@.$(VERSION) $< -Wl,--version-script=src/strix.map -Wl,-soname,libstrix.so.$(SOVERSION) \
	  $(LIBS)
	ln -sf libstrix.so.$(VERSION) $@.$(SOVERSION)
	ln -sf libstrix.so.$(SOVERSION) $@

# Called from the command line, lib checks its dependencies first; inside a sub-make it only builds.
ifeq ($(MAKELEVEL),0)
lib:
	@$(DEPS) lib
	$(MAKE) --no-print-directory lib
else
lib: $(B)/libstrix.a $(B)/libstrix.so
endif

# ---- tests ------------------------------------------------------------------------------------
TEST_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) -Iinclude -Isrc -Itests -pthread
TEST_BINS := $(addprefix $(B)/tests/,$(UNIT_TESTS) $(COMPAT_TESTS) $(CXX_TESTS) $(STRESS_TESTS) \
               $(WHITE_TESTS))
# Per-test link flags: test_group makes chosen thread creations fail through a wrapped
# pthread_create (the library's calls included).
TEST_LDFLAGS_test_group := -Wl,--wrap=pthread_create
TEST_LDFLAGS_test_pipeline := -Wl,--wrap=pthread_key_create

$(B)/tests/%: tests/unit/%.c tests/testutil.h $(B)/libstrix.a | $(B)/tests
	$(CC) $(TEST_CFLAGS) $< -o $@ $(B)/libstrix.a -lcmocka $(LIBS) $(TEST_LDFLAGS_$*)
$(B)/tests/%: tests/stress/%.c tests/testutil.h $(B)/libstrix.a | $(B)/tests
	$(CC) $(TEST_CFLAGS) $< -o $@ $(B)/libstrix.a -lcmocka $(LIBS)
$(B)/tests/%: tests/compat/%.c tests/testutil.h $(B)/libstrix.a | $(B)/tests
	$(CC) $(TEST_CFLAGS) $< -o $@ $(B)/libstrix.a -lcmocka $(LIBS)
# White-box: the library's sources, but for the one the test includes; debug assertions on.
$(B)/tests/%: tests/white/%.c $(WHITE_LIB_SRCS) $(SRC_HDRS) $(wildcard include/strix/*.h tests/*.h) | $(B)/tests
	$(CC) $(TEST_CFLAGS) -DSX_DEBUG=1 $< $(filter-out $(WHITE_SRC_$*),$(WHITE_LIB_SRCS)) -o $@ \
	  -lcmocka $(LIBS)
$(B)/tests/%: tests/cxx/%.cc $(wildcard include/strix/*.h include/*.h) $(B)/libstrix.a | $(B)/tests
	$(CXX) -std=c++17 -Wall -Wextra $(CFLAGS) -Iinclude -pthread $< -o $@ $(B)/libstrix.a \
	  -lcmocka $(LIBS)

tests: lib $(TEST_BINS)

# The layer rule (src/README): includes, and the calls the built objects make, point down only.
check-layers: lib
	tools/check-layers.sh $(B)/obj

# Each public header alone in a translation unit, strict C11 and C++17, warnings as errors.
check-headers:
	CC=$(CC) CXX=$(CXX) tools/check-headers.sh

# Every SX_API declaration is listed by name in src/strix.map, and every listed name is defined
# by libstrix.so (tools/check-exports.sh).
check-exports: lib
	tools/check-exports.sh $(B)

# The shared library's ABI against abi/libstrix.abi: additions pass, removals and changes fail
# (tools/check-abi.sh, libabigail). abi-record rewrites the record after a deliberate change.
check-abi: lib
	tools/check-abi.sh $(B)
abi-record: lib
	tools/check-abi.sh $(B) --record

test:
	@$(DEPS) test
	$(MAKE) --no-print-directory tests
	tools/check-layers.sh $(B)/obj
	CC=$(CC) CXX=$(CXX) tools/check-headers.sh
	tools/check-exports.sh $(B)
	tools/check-abi.sh $(B)
	tools/run-tests.sh $(B)/tests $(UNIT_TESTS) $(COMPAT_TESTS) $(CXX_TESTS) $(STRESS_TESTS) \
	  $(WHITE_TESTS)
	$(MAKE) --no-print-directory check-examples check-readme check-install check-proxy

check-white:
	@$(DEPS) test
	$(MAKE) --no-print-directory $(addprefix $(B)/tests/,$(WHITE_TESTS))
	tools/run-tests.sh $(B)/tests $(WHITE_TESTS)

# ---- sanitizers -------------------------------------------------------------------------------
# Sanitizer builds compile the library straight into each test (no prelink) with the C library
# allocator (src/base/alloc_libc.c), so ASan/LSan see strix's own memory.
SAN_SRCS := $(LIB_SRCS) src/base/alloc_libc.c
ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
              -DSX_DEBUG=1
TSAN_FLAGS := -O1 -g -fsanitize=thread -DCK_USE_CC_BUILTINS=1 -include tests/ck_tsan.h -DSX_DEBUG=1

define san_rule
$(B)/$(1)/%: tests/unit/%.c $(SAN_SRCS) $(SRC_HDRS) $(wildcard include/strix/*.h tests/*.h) | $(B)/$(1)
	$(CC) $(CSTD) $(WARN) $(2) -Iinclude -Isrc -Itests -pthread $$< $(SAN_SRCS) -o $$@ -lcmocka $(LIBS) $$(TEST_LDFLAGS_$$*)
$(B)/$(1)/%: tests/stress/%.c $(SAN_SRCS) $(SRC_HDRS) $(wildcard include/strix/*.h tests/*.h) | $(B)/$(1)
	$(CC) $(CSTD) $(WARN) $(2) -Iinclude -Isrc -Itests -pthread $$< $(SAN_SRCS) -o $$@ -lcmocka $(LIBS)
$(B)/$(1)/%: tests/compat/%.c $(SAN_SRCS) $(SRC_HDRS) $(wildcard include/strix/*.h tests/*.h) | $(B)/$(1)
	$(CC) $(CSTD) $(WARN) $(2) -Iinclude -Isrc -Itests -pthread $$< $(SAN_SRCS) -o $$@ -lcmocka $(LIBS)
$(B)/$(1)/%: tests/white/%.c $(WHITE_LIB_SRCS) $(SRC_HDRS) $(wildcard include/strix/*.h tests/*.h) | $(B)/$(1)
	$(CC) $(CSTD) $(WARN) $(2) -Iinclude -Isrc -Itests -pthread $$< \
	  $$(filter-out $$(WHITE_SRC_$$*),$(WHITE_LIB_SRCS)) -o $$@ -lcmocka $(LIBS)
endef
$(eval $(call san_rule,asan,$(ASAN_FLAGS)))
$(eval $(call san_rule,tsan,$(TSAN_FLAGS)))

check-asan:
	@$(DEPS) test
	$(MAKE) --no-print-directory $(addprefix $(B)/asan/,$(UNIT_TESTS) $(COMPAT_TESTS) $(STRESS_TESTS) $(WHITE_TESTS))
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  tools/run-tests.sh $(B)/asan $(UNIT_TESTS) $(COMPAT_TESTS) $(STRESS_TESTS) $(WHITE_TESTS)

TSAN_RUN := TSAN_OPTIONS="halt_on_error=1 history_size=7 second_deadlock_stack=1 \
  suppressions=$(CURDIR)/tests/tsan.supp"

check-tsan:
	@$(DEPS) test
	$(MAKE) --no-print-directory $(addprefix $(B)/tsan/,$(UNIT_TESTS) $(COMPAT_TESTS) $(STRESS_TESTS) $(WHITE_TESTS))
	$(TSAN_RUN) tools/run-tests.sh $(B)/tsan $(UNIT_TESTS) $(COMPAT_TESTS) $(STRESS_TESTS) \
	  $(WHITE_TESTS)

# ---- fault injection --------------------------------------------------------------------------
# The library's sources with tests/inject/faults.c in place of the allocator: it fails the k-th
# allocation (or the k-th and all later ones) on the test's command, and wraps pthread_create and
# pthread_key_create the same way. ASan + LSan: a failed call must leak nothing.
INJECT_SRCS := $(LIB_SRCS) tests/inject/faults.c
$(B)/inject/%: tests/inject/%.c $(INJECT_SRCS) $(SRC_HDRS) $(wildcard include/strix/*.h tests/*.h tests/inject/*.h) | $(B)/inject
	$(CC) $(CSTD) $(WARN) $(ASAN_FLAGS) -Iinclude -Isrc -Itests -pthread $< $(INJECT_SRCS) -o $@ \
	  -lcmocka $(LIBS) -Wl,--wrap=pthread_create -Wl,--wrap=pthread_key_create

check-inject:
	@$(DEPS) test
	$(MAKE) --no-print-directory $(addprefix $(B)/inject/,$(INJECT_TESTS))
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  tools/run-tests.sh $(B)/inject $(INJECT_TESTS)

# ---- fuzzing ----------------------------------------------------------------------------------
# libFuzzer (clang) with ASan + UBSan. Each target starts from its corpus in tests/fuzz/corpus/
# (read only) and writes what it finds under build/fuzz/; CI runs each for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer -DSX_DEBUG=1 -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=all
$(B)/fuzz/%: tests/fuzz/%.c $(SAN_SRCS) $(SRC_HDRS) $(wildcard include/strix/*.h tests/fuzz/*.h) | $(B)/fuzz
	clang $(CSTD) -Wall -Wextra $(FUZZ_FLAGS) -Iinclude -Isrc -Itests -pthread $< $(SAN_SRCS) -o $@ $(LIBS)

fuzz:
	@$(DEPS) test
	$(MAKE) --no-print-directory $(addprefix $(B)/fuzz/,$(FUZZ_TARGETS))
	tools/run-fuzz.sh $(B)/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The stress programs only, longer: make stress STRESS=3 TSAN_STRESS=1 (release and TSan builds).
STRESS ?= 1
TSAN_STRESS ?= 1
stress:
	@$(DEPS) test
	$(MAKE) --no-print-directory tests $(addprefix $(B)/tsan/,$(STRESS_TESTS))
	STRESS=$(STRESS) tools/run-tests.sh $(B)/tests $(STRESS_TESTS)
	STRESS=$(TSAN_STRESS) $(TSAN_RUN) tools/run-tests.sh $(B)/tsan $(STRESS_TESTS)

# ---- bench ------------------------------------------------------------------------------------
include bench/bench.mk

# ---- examples, install, docs ------------------------------------------------------------------
-include examples/examples.mk
-include pkg/install.mk
-include docs/docs.mk

clean:
	rm -rf $(B)

perf:
	@$(DEPS) perf
	$(MAKE) --no-print-directory lib $(B)/bench/strix-bench
	perf/profile.sh
