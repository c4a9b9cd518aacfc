# The Go peer (bench/peers/go): filled in by its implementation.
GO_BENCH := $(B)/bench/peers/go-bench
