#!/usr/bin/env bash
# README's test command: formatting, lints and the whole test suite. GPU tests skip (and say so)
# where no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
# Property tests draw random inputs from one seed per commit, so a CI failure replays exactly here:
# PROPTEST_RNG_SEED=<printed seed> bash scripts/test.sh
if [ -z "${PROPTEST_RNG_SEED:-}" ]; then
  commit=$(git rev-parse HEAD 2>/dev/null || echo 0)
  export PROPTEST_RNG_SEED=$((16#${commit:0:15}))
fi
echo "property tests: PROPTEST_RNG_SEED=$PROPTEST_RNG_SEED"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# The runtime-only build (no LLVM): runs kernels from the on-disk cache.
cargo check --quiet -p tritonite-kernels --features gpu
# The framework adapters (candle links the CUDA libraries, so its tests are built here, and run
# on a GPU machine: scripts/device-autograd.sh).
. scripts/cuda-env.sh
cargo clippy --quiet -p tritonite-autograd --features candle,burn --all-targets -- -D warnings
cargo test --quiet -p tritonite-autograd --features candle,burn --no-run
