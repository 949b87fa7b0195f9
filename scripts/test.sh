#!/usr/bin/env bash
# README's test command: formatting, lints and the whole test suite. GPU tests skip (and say so)
# where no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# The runtime-only build (no LLVM): runs kernels from the on-disk cache.
cargo check --quiet -p tritonite-kernels --features gpu
