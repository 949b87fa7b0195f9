#!/usr/bin/env bash
# On the GPU machine (carry .device, the CLI payload): how evenly the tuned RMSNorm kernels of one
# shape keep the SMs busy, and what the dW reduction costs. ncu (clocks not locked) on one launch
# each of the forward, the backward and its `sum_partials`, as `tritonite bench` launches them:
# duration, DRAM throughput, and the SMs' active cycles (mean and busiest SM). Writes the raw ncu output to $OUT/balance-*.txt and prints a
# summary (balance.py).
set -uo pipefail
cd "$(dirname "$0")/../../.."
source benches/explore/tuned-cli.sh
SHAPE=${SHAPE:-1024x262144:bf16}
METRICS=gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__cycles_elapsed.max,sm__cycles_active.max,sm__cycles_active.avg
for kernel in rms_norm_fwd rms_norm_bwd sum_partials; do
  timeout 200 ncu --clock-control none --metrics "$METRICS" \
    --kernel-name "regex:$kernel" --launch-skip 5 --launch-count 1 \
    $T bench --shapes "$SHAPE" > "$OUT/balance-$kernel.txt" 2>&1
  echo "== $kernel (ncu exit $?)"
  python3 benches/explore/ncu-balance/balance.py "$OUT/balance-$kernel.txt"
done
