# The benchmark suite (included by the top-level Makefile); bench/README.md describes it.
#   make bench         build, run the default suite (about 2 minutes, all cores) and report:
#                      build/bench/results.json, results.md, results.png; no tracked file changes
#   make bench-smoke   every benchmark once at tiny sizes, checked (CI): build/bench-smoke.json
#   make bench-record  copy the last make bench's results to perf/results/latest.{json,md,png},
#                      the tracked copy; only when you mean to record that run
#   make bench-proxy   the proxy example against nginx and HAProxy (tools/bench_proxy.sh):
#                      build/bench/proxy.json, proxy.md, proxy.png
# tools/bench.sh runs the binary under tools/bench_load.py (machine-load sampling) and
# tools/bench_report.py (table, chart, busy-machine warning).
BENCH_C   := bench/harness.c bench/hist.c bench/common.c bench/strix_impl.c \
             bench/peers/thpool_impl.c bench/peers/uv_bench.c bench/peers/futex_bench.c \
             bench/wheel_bench.c bench/promise_bench.c bench/fanout_bench.c bench/pipeline_bench.c \
             bench/group_bench.c bench/join_bench.c bench/strand_bench.c bench/resilience_bench.c \
             bench/blocking_bench.c bench/registry_bench.c
# The strix side of io_pingpong needs strix's I/O module: bench/io_bench.c is built, and the row
# registered (bench_main.cc, STRIX_HAVE_IO), only when include/strix/io.h exists; without it the
# row has its peers alone and the report notes why strix's cell is empty.
STRIX_IO_H := $(wildcard include/strix/io.h)
ifneq ($(STRIX_IO_H),)
BENCH_C   += bench/io_bench.c
BENCH_IO_FLAGS := -DSTRIX_HAVE_IO
endif
BENCH_OBJ := $(patsubst bench/%.c,$(B)/bench/%.o,$(BENCH_C)) $(B)/bench/peers/omp_bench.o \
             $(B)/bench/peers/tbb_bench.o $(B)/bench/peers/asio_bench.o $(B)/bench/peers/thpool.o \
             $(B)/bench/bench_main.o
include bench/peers/go/go.mk bench/peers/rust/rust.mk
BENCH_CFLAGS := $(CSTD) $(WARN) -O2 -g -Iinclude -pthread
THPOOL_SRC := /usr/share/cthreadpool/thpool.c

$(B)/bench/%.o: bench/%.c bench/workloads.h bench/hist.h $(wildcard include/strix/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -c $< -o $@
$(B)/bench/peers/omp_bench.o: bench/peers/omp_bench.c bench/workloads.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -fopenmp -c $< -o $@
$(B)/bench/peers/tbb_bench.o: bench/peers/tbb_bench.cc bench/workloads.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -g -Wall -Wextra -pthread -c $< -o $@
# Boost.Asio, header-only (Boost 1.74's Boost.System needs no library either).
$(B)/bench/peers/asio_bench.o: bench/peers/asio_bench.cc bench/peers/asio.h bench/workloads.h \
    bench/hist.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -g -Wall -Wextra -pthread -c $< -o $@
# The peer as Debian ships it: its own source, its own header directory, its own warnings.
$(B)/bench/peers/thpool.o: $(THPOOL_SRC)
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -w -pthread -I/usr/include/cthreadpool -c $< -o $@
$(B)/bench/bench_main.o: bench/bench_main.cc bench/workloads.h bench/hist.h $(STRIX_IO_H)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -g -Wall -Wextra -pthread $(BENCH_IO_FLAGS) -c $< -o $@

$(B)/bench/strix-bench: $(BENCH_OBJ) $(B)/libstrix.a
	$(CXX) -o $@ $(BENCH_OBJ) $(B)/libstrix.a -lbenchmark -luv -ltbb -fopenmp $(LIBS)

bench-build:
	@$(DEPS) bench
	$(MAKE) --no-print-directory lib $(B)/bench/strix-bench $(GO_BENCH) $(RUST_BENCH)

bench: bench-build
	tools/bench.sh full

bench-smoke: bench-build
	tools/bench.sh smoke

bench-record:
	tools/bench.sh record

# The proxy benchmark (bench/README.md, "Proxy benchmark"): nginx, HAProxy and the strix proxy
# (examples/proxy, once it exists) behind the same upstreams under wrk, six scenarios:
# build/bench/proxy.{json,md,png}. PROXY_BENCH_SECONDS=2 for a smoke run.
bench-proxy:
	@$(DEPS) proxy
	$(MAKE) --no-print-directory proxy-examples
	tools/bench_proxy.sh

.PHONY: bench-record bench-proxy
