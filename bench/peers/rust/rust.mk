# The tokio and rayon peers (bench/peers/rust): filled in by their implementation.
RUST_BENCH := $(B)/bench/peers/rust-bench
