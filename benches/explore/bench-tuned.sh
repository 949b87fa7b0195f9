#!/usr/bin/env bash
# On the GPU machine (carry .device): our bench with each tuned export named (default
# benches/tuned-h100.json), one after another in one call. Logs in $OUT (bench-1.log, ...).
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/tritonite-out}"; mkdir -p "$OUT"
xz -d -k -f .device/tritonite.xz && chmod +x .device/tritonite
n=0
[ $# -gt 0 ] || set -- benches/tuned-h100.json
for tuned in "$@"; do
  n=$((n + 1))
  export TRITONITE_CACHE_DIR=/tmp/cache-bench-$n
  rm -rf "$TRITONITE_CACHE_DIR"
  .device/tritonite cache import "$tuned" > /dev/null
  .device/tritonite bench > "$OUT/bench-$n.log" 2>&1
  echo "=== $tuned"; grep -E "^\| [0-9]" "$OUT/bench-$n.log" | head -14 | awk -F'|' '{print $2,$3,$5,$8}'
done
