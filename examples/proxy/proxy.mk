# The HTTP/1.1 reverse proxy example and its test upstream (included by examples/examples.mk);
# examples/proxy/README.md describes them, bench/README.md the benchmark that drives them.
#
#   make proxy-examples    build/examples/proxy-upstream, and build/examples/proxy once its
#                          source (examples/proxy/proxy.c) and the I/O module's header
#                          (include/strix/io.h) are there
#   make check-proxy       the smoke test (tests/proxy/smoke.sh; part of make test): the proxy
#                          in front of a healthy, a failing and a down upstream, requests of
#                          every shape through it, its --stats checked at exit
#   make check-proxy-asan  the same with the proxy built with ASan and UBSan (build/asan/proxy)
#   make check-proxy-tsan  the same with the proxy built with ThreadSanitizer (build/tsan/proxy)
#
# Neither is one of the self-checking examples/*.c programs (both run until stopped), so
# check-examples and check-readme leave them out.

PROXY_HTTP := examples/proxy/http.c examples/proxy/http.h
# The upstream is a plain POSIX program: no strix, epoll for its connections.
PROXY_UPSTREAM_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -Werror -pedantic $(CFLAGS) -pthread
# The proxy is built as the examples are (the public headers only), from every source in the
# folder but the upstream's.
PROXY_SRCS := $(filter-out examples/proxy/upstream.c,$(wildcard examples/proxy/*.c))
PROXY_BIN := $(if $(and $(wildcard examples/proxy/proxy.c),$(wildcard include/strix/io.h)), \
    $(B)/examples/proxy)

.PHONY: proxy-examples check-proxy check-proxy-asan check-proxy-tsan

$(B)/examples/proxy-upstream: examples/proxy/upstream.c $(PROXY_HTTP) | $(B)/examples
	$(CC) $(PROXY_UPSTREAM_CFLAGS) examples/proxy/upstream.c examples/proxy/http.c -o $@

$(B)/examples/proxy: $(PROXY_SRCS) $(wildcard examples/proxy/*.h) $(PUBLIC_HDRS) \
    $(B)/libstrix.a | $(B)/examples
	$(CC) $(EXAMPLE_CFLAGS) -D_GNU_SOURCE $(PROXY_SRCS) -o $@ $(B)/libstrix.a $(LIBS)

proxy-examples: $(B)/examples/proxy-upstream $(PROXY_BIN)

# The smoke test's client (tests/proxy/client.c), a plain POSIX program on the proxy's parser.
$(B)/tests/proxy-client: tests/proxy/client.c $(PROXY_HTTP) | $(B)/tests
	$(CC) $(PROXY_UPSTREAM_CFLAGS) tests/proxy/client.c examples/proxy/http.c -o $@

ifneq ($(PROXY_BIN),)
check-proxy: proxy-examples $(B)/tests/proxy-client
	tests/proxy/smoke.sh
else
check-proxy:
	@echo "check-proxy: skipped: the proxy needs examples/proxy/proxy.c and include/strix/io.h"
endif

# The proxy with AddressSanitizer and UBSan, or with ThreadSanitizer: the library's sources
# compiled in with the C library's allocator (SAN_SRCS), as the sanitizer builds of the tests are.
$(B)/asan/proxy: $(PROXY_SRCS) $(wildcard examples/proxy/*.h) $(PUBLIC_HDRS) $(SAN_SRCS) \
    $(SRC_HDRS) | $(B)/asan
	$(CC) $(CSTD) $(WARN) $(ASAN_FLAGS) -Iinclude -Isrc -pthread $(PROXY_SRCS) $(SAN_SRCS) \
	  -o $@ $(LIBS)
$(B)/tsan/proxy: $(PROXY_SRCS) $(wildcard examples/proxy/*.h) $(PUBLIC_HDRS) $(SAN_SRCS) \
    $(SRC_HDRS) | $(B)/tsan
	$(CC) $(CSTD) $(WARN) $(TSAN_FLAGS) -Iinclude -Isrc -Itests -pthread $(PROXY_SRCS) \
	  $(SAN_SRCS) -o $@ $(LIBS)

# A sanitizer's report makes the proxy exit non-zero, which the smoke test checks.
check-proxy-asan: $(B)/asan/proxy $(B)/examples/proxy-upstream $(B)/tests/proxy-client
	PROXY=$(B)/asan/proxy tests/proxy/smoke.sh
check-proxy-tsan: $(B)/tsan/proxy $(B)/examples/proxy-upstream $(B)/tests/proxy-client
	$(TSAN_RUN) PROXY=$(B)/tsan/proxy tests/proxy/smoke.sh

# The parser's unit test (tests/unit/test_proxy_http.c) compiles the parser in: it is no part of
# the library. The same for its sanitizer builds (build/asan, build/tsan).
TEST_LDFLAGS_test_proxy_http := examples/proxy/http.c
$(B)/tests/test_proxy_http $(B)/asan/test_proxy_http $(B)/tsan/test_proxy_http: $(PROXY_HTTP)
