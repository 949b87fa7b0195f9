# Sourced from the repository root by the explore scripts that run on the GPU machine with the CLI
# payload (carry .device): makes $OUT, unpacks the CLI as $T, and imports the tuned configs of
# benches/tuned-h100.json into $TRITONITE_CACHE_DIR (default /tmp/tritonite-cache).
OUT="${OUT:-/tmp/tritonite-out}"; mkdir -p "$OUT"
xz -d -k -f .device/tritonite.xz && chmod +x .device/tritonite
T=.device/tritonite
export TRITONITE_CACHE_DIR="${TRITONITE_CACHE_DIR:-/tmp/tritonite-cache}"
$T cache import benches/tuned-h100.json > /dev/null
