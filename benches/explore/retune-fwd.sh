#!/usr/bin/env bash
# On the GPU machine (carry .device): the forward retuned on every PEERS.md shape with the full
# candidate list (--force) and the backward of 1024x262144 tuned (it had no entry), with our bench
# before and after in the same call. Logs and the new export (tuned.json) in $OUT.
set -u
cd "$(dirname "$0")/../.."
export TRITONITE_CACHE_DIR=/tmp/cache-retune
source benches/explore/tuned-cli.sh
rows() { grep -E "^\| [0-9]" "$1" | head -14 | awk -F'|' '{print $2,$3,$4,$5,$8}'; }
$T bench > "$OUT/bench-before.log" 2>&1; echo "=== before"; rows "$OUT/bench-before.log"
s=$(date +%s)
$T autotune --kernel rmsnorm-fwd --force --shapes "${TUNE_SHAPES:-peers}" > "$OUT/autotune-fwd.md" 2> "$OUT/autotune-fwd.err"
echo "autotune fwd exit $? in $(( $(date +%s) - s )) s"; tail -16 "$OUT/autotune-fwd.md"
$T cache export "$OUT/tuned.json"
s=$(date +%s)
$T autotune --kernel rmsnorm-bwd --shapes 1024x262144:bf16 > "$OUT/autotune-bwd.md" 2> "$OUT/autotune-bwd.err"
echo "autotune bwd exit $? in $(( $(date +%s) - s )) s"; tail -4 "$OUT/autotune-bwd.md"
$T cache export "$OUT/tuned.json"
$T bench > "$OUT/bench-after.log" 2>&1; echo "=== after"; rows "$OUT/bench-after.log"
