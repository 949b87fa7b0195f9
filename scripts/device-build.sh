#!/usr/bin/env bash
# Builds the GPU test payload here (the GPU machine has no Rust or LLVM): the GPU test binary,
# stripped and xz-compressed, into .device/ (git-ignored). Then run it there with
#   device run: bash scripts/device-run.sh      (carry: .device)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device
exe=$(cargo test --release --test gpu_rmsnorm --no-run --message-format=json 2>/dev/null \
      | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("executable") and m.get("target",{}).get("name")=="gpu_rmsnorm": print(m["executable"])')
[ -n "$exe" ] || { echo "device-build: test binary not found" >&2; exit 1; }
strip -o .device/gpu_rmsnorm "$exe"
xz -6 -f -T2 .device/gpu_rmsnorm
ls -la .device
