#!/usr/bin/env bash
# Builds the stamps experiment into .device-x/stamps.xz (git-ignored; carry .device-x):
# lowering.patch applied (TRITONITE_STAMPS=1 makes every kernel write, per program, its
# %globaltimer at start and end and its %smid into the first 32 bytes per program of its `dx` or
# `y` output) and stamps.rs built as an example; both reverted after the build.
# On the GPU machine:
#   cd .device-x && xz -d -k -f stamps.xz && chmod +x stamps && TRITONITE_STAMPS=1 TRITONITE_CACHE_DIR=/tmp/st ./stamps
# It prints, for three rounds of the tuned forward and backward of 1024x262144 bf16, each
# cluster's first/last start and end (us after the earliest start) and its SMs.
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=benches/explore/stamps
git apply "$here/lowering.patch"
cp "$here/stamps.rs" examples/stamps.rs
trap 'git apply -R "$here/lowering.patch"; rm -f examples/stamps.rs' EXIT
source scripts/cuda-env.sh
cargo build --release --example stamps
mkdir -p .device-x
strip -o .device-x/stamps "${CARGO_TARGET_DIR:-target}/release/examples/stamps"
xz -6 -f -T2 .device-x/stamps
ls -la .device-x
