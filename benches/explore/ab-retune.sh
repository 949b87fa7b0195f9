#!/usr/bin/env bash
# On the GPU machine, two calls back to back (the same machine while warm):
#   `bash benches/explore/ab-retune.sh old` (carry .device-old, its tuned.json keyed for its build)
#   `bash benches/explore/ab-retune.sh` (carry .device): the new build with the same configs, then
#   its forward retuned (--force) on TUNE_SHAPES and benched again. Logs in $OUT.
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/tritonite-out}"; mkdir -p "$OUT"
bench() { # dir tuned-json log
  xz -d -k -f "$1/tritonite.xz" && chmod +x "$1/tritonite"
  TRITONITE_CACHE_DIR=/tmp/cache-$(basename "$1") "$1/tritonite" cache import "$2" > /dev/null
  TRITONITE_CACHE_DIR=/tmp/cache-$(basename "$1") "$1/tritonite" bench > "$OUT/$3" 2>&1
  echo "=== $3"; grep -E "^\| [0-9]" "$OUT/$3" | head -14 | awk -F'|' '{print $2,$3,$5,$8}'
}
if [ "${1:-}" = old ]; then bench .device-old .device-old/tuned.json bench-old.log; exit 0; fi
bench .device benches/tuned-h100.json bench-new.log
TRITONITE_CACHE_DIR=/tmp/cache-.device .device/tritonite autotune --kernel rmsnorm-fwd --force \
  --shapes "${TUNE_SHAPES:-32768x256:bf16,4096x8192:bf16,2048x8192:f32,16384x1024:f32,32768x8192:bf16,32768x5120:bf16}" \
  > "$OUT/autotune.md" 2> "$OUT/autotune.err"; echo "autotune exit $?"; cat "$OUT/autotune.md" | tail -12
TRITONITE_CACHE_DIR=/tmp/cache-.device .device/tritonite cache export "$OUT/tuned.json"
TRITONITE_CACHE_DIR=/tmp/cache-.device .device/tritonite bench > "$OUT/bench-new-retuned.log" 2>&1
echo "=== bench-new-retuned.log"; grep -E "^\| [0-9]" "$OUT/bench-new-retuned.log" | head -14 | awk -F'|' '{print $2,$3,$4,$5,$8}'
