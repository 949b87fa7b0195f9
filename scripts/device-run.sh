#!/usr/bin/env bash
# Runs the payload of scripts/device-build.sh on the GPU machine: the GPU test suite, then
# compute-sanitizer memcheck and racecheck over a quick subset. Logs go to $OUT; a summary last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/tritonite-out}"; mkdir -p "$OUT"
xz -d -k -f .device/gpu.xz && chmod +x .device/gpu
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
.device/gpu --test-threads=1 --nocapture > "$OUT/gpu_suite.log" 2>&1; suite=$?
export TRITONITE_GPU_QUICK=1
compute-sanitizer --tool memcheck --error-exitcode 9 .device/gpu --test-threads=1 > "$OUT/memcheck.log" 2>&1; mem=$?
compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 9 .device/gpu --test-threads=1 > "$OUT/racecheck.log" 2>&1; race=$?
grep -E "^(ok|FAIL) " "$OUT/gpu_suite.log" | head -80
grep -E "test result|compiled" "$OUT/gpu_suite.log"
echo "memcheck: $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1) (exit $mem)"
echo "racecheck: $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/racecheck.log" | tail -1) (exit $race)"
echo "suite exit $suite, memcheck exit $mem, racecheck exit $race"
