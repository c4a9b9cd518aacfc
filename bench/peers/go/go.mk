# The Go peer (bench/peers/go, bench/peers/README.md): built offline with Debian's Go in GOPATH
# mode against Debian's golang.org/x/sync and golang.org/x/time sources; no module download.
GO_BENCH := $(B)/bench/peers/go-bench
GO_BENCH_ENV := GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
                GOCACHE=$(abspath $(B)/bench/peers/go-cache)

$(GO_BENCH): $(wildcard bench/peers/go/*.go)
	@mkdir -p $(dir $@)
	$(GO_BENCH_ENV) /usr/bin/go build -o $@ ./bench/peers/go
