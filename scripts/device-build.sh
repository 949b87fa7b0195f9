#!/usr/bin/env bash
# Builds a GPU payload here (the GPU machine has no Rust or LLVM) into .device/ (git-ignored):
#   suite (default): the GPU test binary          -> run there: bash scripts/device-run.sh
#   cli:             the tritonite CLI + peers.py  -> run there: bash scripts/device-bench.sh
#   peers:           liger/quack wheels into .device-site1/ and .device-site2/ (scripts/peers-wheels.sh;
#                    does not touch .device/); the two-call procedure is at the top of device-bench.sh
# Each binary is stripped and xz-compressed (~31 MB); send one per call (carry: .device).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-suite}"
[ "$what" = peers ] && exec bash scripts/peers-wheels.sh
rm -rf .device && mkdir -p .device
case "$what" in
  suite)
    exe=$(cargo test --release --test gpu_rmsnorm --no-run --message-format=json 2>/dev/null \
          | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("executable") and m.get("target",{}).get("name")=="gpu_rmsnorm": print(m["executable"])')
    [ -n "$exe" ] || { echo "device-build: test binary not found" >&2; exit 1; }
    strip -o .device/gpu_rmsnorm "$exe"
    xz -6 -f -T2 .device/gpu_rmsnorm ;;
  cli)
    cargo build --release --bin tritonite
    strip -o .device/tritonite "${CARGO_TARGET_DIR:-target}/release/tritonite"
    xz -6 -f -T2 .device/tritonite
    cp ../shared/anchors/peers.py .device/peers.py ;;
  *) echo "usage: $0 [suite|cli|peers]" >&2; exit 2 ;;
esac
ls -la .device
