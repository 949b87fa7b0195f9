#!/usr/bin/env bash
# On the GPU machine: times a configs plan (scripts/device-configs.sh) with the CLI payload in
# folder $2 (default .device), $3 rounds (default 2), a fresh tuning cache each round, and prints
# each row's medians in the order measured (the heuristic's sweep first, then the configs' sweeps
# and final rounds). For A/B runs of two builds, one call each, back to back while the
# machine is warm (the other build in another folder, e.g. the git-ignored .device-old: carry it
# instead of .device and name it as PAYLOAD_DIR).
#   bash scripts/ab-device.sh PLAN [PAYLOAD_DIR] [ROUNDS]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/tritonite-out}"
dir="${2:-.device}"
if [ "$dir" != .device ]; then mkdir -p .device && cp "$dir/tritonite.xz" .device/tritonite.xz; fi
for round in $(seq "${3:-2}"); do
  rm -rf /tmp/tritonite-configs-cache
  OUT=$OUT/round$round bash scripts/device-configs.sh "$1" > /dev/null 2>&1
  echo "== $dir round $round"
  grep -E "^##|^sweep|^final" "$OUT/round$round/configs.log" | sed -E 's/BLOCK_SIZE.*-> //' \
    | awk '/^##/{if (s) print s; s=$0; next} {s=s" "$2} END{print s}'
done
