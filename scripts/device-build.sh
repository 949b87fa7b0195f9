#!/usr/bin/env bash
# Builds a GPU payload here (the GPU machine has no Rust or LLVM) into .device/ (git-ignored):
#   suite (default): the GPU test binary          -> run there: bash scripts/device-run.sh
#   cli:             the tritonite CLI + peers.py  -> run there: bash scripts/device-bench.sh
#   autograd:        the candle + burn adapter GPU tests into .device-ag/ (source scripts/cuda-env.sh
#                    first)                    -> run there: bash scripts/device-autograd.sh
#   peers:           liger/quack wheels into .device-site1/ and .device-site2/ (scripts/peers-wheels.sh;
#                    does not touch .device/); the two-call procedure is at the top of device-bench.sh
# Each binary is stripped and xz-compressed (~31 MB); send one per call (carry: .device).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-suite}"
[ "$what" = peers ] && exec bash scripts/peers-wheels.sh
if [ "$what" = autograd ]; then
  exe=$(cargo test -p tritonite-autograd --features candle,burn --test gpu --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("executable") and m.get("target",{}).get("name")=="gpu": print(m["executable"])')
  [ -n "$exe" ] || { echo "device-build: autograd test binary not found" >&2; exit 1; }
  rm -rf .device-ag && mkdir -p .device-ag
  strip -o .device-ag/autograd_gpu "$exe"
  xz -6 -f -T2 .device-ag/autograd_gpu
  cp scripts/device-autograd.sh .device-ag/
  ls -la .device-ag
  exit 0
fi
rm -rf .device && mkdir -p .device
case "$what" in
  suite)
    exe=$(cargo test --release --test gpu --no-run --message-format=json 2>/dev/null \
          | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("executable") and m.get("target",{}).get("name")=="gpu": print(m["executable"])')
    [ -n "$exe" ] || { echo "device-build: test binary not found" >&2; exit 1; }
    strip -o .device/gpu "$exe"
    xz -6 -f -T2 .device/gpu ;;
  cli)
    cargo build --release --bin tritonite
    strip -o .device/tritonite "${CARGO_TARGET_DIR:-target}/release/tritonite"
    xz -6 -f -T2 .device/tritonite
    cp ../shared/anchors/peers.py .device/peers.py ;;
  *) echo "usage: $0 [suite|cli|autograd|peers]" >&2; exit 2 ;;
esac
ls -la .device
