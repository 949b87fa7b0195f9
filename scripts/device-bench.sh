#!/usr/bin/env bash
# On the GPU machine, with the `cli` payload of scripts/device-build.sh: the main job, our
# benchmark, and the peers (torch, torch.compile; PEERS overrides) measured in the same call.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/tritonite-out}"; mkdir -p "$OUT"
xz -d -k -f .device/tritonite.xz && chmod +x .device/tritonite
.device/tritonite > "$OUT/main_job.log" 2>&1; echo "main job exit $?"; tail -6 "$OUT/main_job.log"
.device/tritonite bench ${SHAPES:+--shapes "$SHAPES"} 2>&1 | tee "$OUT/bench.md"
if [ "${PEERS:-torch,torch.compile}" != none ]; then
  PEERS="${PEERS:-torch,torch.compile}" PYTHONUNBUFFERED=1 python3 .device/peers.py > "$OUT/peers.log" 2>&1
  echo "peers exit $?"; grep -A40 "^ *shape" "$OUT/peers.log" | head -40
fi
