#!/usr/bin/env bash
# On the GPU machine, with the `cli` payload of scripts/device-build.sh: tunes RMSNorm forward and
# backward for SHAPES (default: the peer table's), runs the tuner again to show that everything is
# cached, then benchmarks with the tuned configs. The cache lives in $OUT/cache and is exported to
# $OUT/tuned.json; tables go to $OUT/autotune.md, $OUT/autotune-again.md, $OUT/bench.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/tritonite-out}"; mkdir -p "$OUT"
export TRITONITE_CACHE_DIR="$OUT/cache"
xz -d -k -f .device/tritonite.xz && chmod +x .device/tritonite
T=.device/tritonite
$T autotune --kernel all --shapes "${SHAPES:-peers}" > "$OUT/autotune.md" 2> "$OUT/autotune.err"; echo "autotune exit $?"
$T autotune --kernel all --shapes "${SHAPES:-peers}" > "$OUT/autotune-again.md" 2>&1; echo "second autotune exit $?"
$T cache export "$OUT/tuned.json"
$T bench ${SHAPES:+--shapes "$SHAPES"} > "$OUT/bench.md" 2>&1; echo "bench exit $?"
cat "$OUT/autotune.md"; tail -1 "$OUT/autotune-again.md"; cat "$OUT/bench.md"
# Only the tuned results come back, not the compiled kernels.
find "$OUT/cache" -mindepth 1 -maxdepth 1 ! -name autotune -exec rm -rf {} +; true
