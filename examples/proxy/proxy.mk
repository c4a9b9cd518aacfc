# The HTTP/1.1 reverse proxy example and its test upstream (included by examples/examples.mk);
# examples/proxy/README.md describes them, bench/README.md the benchmark that drives them.
#
#   make proxy-examples    build/examples/proxy-upstream, and build/examples/proxy once its
#                          source (examples/proxy/proxy.c) is there
#
# Neither is one of the self-checking examples/*.c programs (both run until stopped), so
# check-examples and check-readme leave them out.

PROXY_HTTP := examples/proxy/http.c examples/proxy/http.h
# The upstream is a plain POSIX program: no strix, epoll for its connections.
PROXY_UPSTREAM_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -Werror -pedantic $(CFLAGS) -pthread
# The proxy is built as the examples are (the public headers only), from every source in the
# folder but the upstream's.
PROXY_SRCS := $(filter-out examples/proxy/upstream.c,$(wildcard examples/proxy/*.c))
PROXY_BIN := $(if $(wildcard examples/proxy/proxy.c),$(B)/examples/proxy)

.PHONY: proxy-examples

$(B)/examples/proxy-upstream: examples/proxy/upstream.c $(PROXY_HTTP) | $(B)/examples
	$(CC) $(PROXY_UPSTREAM_CFLAGS) examples/proxy/upstream.c examples/proxy/http.c -o $@

$(B)/examples/proxy: $(PROXY_SRCS) $(wildcard examples/proxy/*.h) $(PUBLIC_HDRS) \
    $(B)/libstrix.a | $(B)/examples
	$(CC) $(EXAMPLE_CFLAGS) -D_GNU_SOURCE $(PROXY_SRCS) -o $@ $(B)/libstrix.a $(LIBS)

proxy-examples: $(B)/examples/proxy-upstream $(PROXY_BIN)

# The parser's unit test (tests/unit/test_proxy_http.c) compiles the parser in: it is no part of
# the library. The same for its sanitizer builds (build/asan, build/tsan).
TEST_LDFLAGS_test_proxy_http := examples/proxy/http.c
$(B)/tests/test_proxy_http $(B)/asan/test_proxy_http $(B)/tsan/test_proxy_http: $(PROXY_HTTP)
