# The tokio and rayon peers (bench/peers/rust): one program, built offline with Debian's cargo and
# rustc against Debian's crates (/usr/share/cargo/registry, through .cargo/config.toml, which
# applies because cargo runs from that directory). CARGO_HOME is the build's own, so a user's
# ~/.cargo configuration or toolchain does not reach the build.
RUST_BENCH := $(B)/bench/peers/rust-bench
RUST_DIR := bench/peers/rust
RUST_TARGET := $(abspath $(B))/bench/peers/rust-target
RUST_SRCS := $(RUST_DIR)/Cargo.toml $(RUST_DIR)/Cargo.lock $(RUST_DIR)/build.rs \
             $(RUST_DIR)/.cargo/config.toml $(wildcard $(RUST_DIR)/src/*.rs)

$(RUST_BENCH): $(RUST_SRCS)
	@mkdir -p $(dir $@)
	cd $(RUST_DIR) && CARGO_HOME=$(abspath $(B))/bench/peers/cargo-home RUSTC=/usr/bin/rustc \
	    /usr/bin/cargo build --offline --release --target-dir $(RUST_TARGET)
	cp $(RUST_TARGET)/release/rust-bench $@
