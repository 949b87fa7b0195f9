#!/usr/bin/env bash
# On the GPU machine (carry .device, the CLI payload): ncu with source counters (clocks not
# locked) on one launch of the tuned RMSNorm backward of M x N bf16 (default 1024 x 262144), as
# `tritonite bench` launches it. Writes the report, the details page and the per-SASS-instruction
# table (stall samples, executed instructions) to $OUT; prints the top stall sites (stalls.py;
# WARP_ROWS=programs x warps x rows a program adds the instruction mix a warp-row).
set -uo pipefail
cd "$(dirname "$0")/../../.."
source benches/explore/tuned-cli.sh
M=${M:-1024}; N=${N:-262144}; KERNEL=${KERNEL:-rms_norm_bwd}
timeout 300 ncu --clock-control none --section SpeedOfLight --section WarpStateStats --section SourceCounters \
  --section LaunchStats --section Occupancy --kernel-name "regex:$KERNEL" --launch-skip 5 --launch-count 1 \
  -o "$OUT/ncu" -f $T bench --shapes "${M}x${N}:bf16" > "$OUT/ncu-run.log" 2>&1
echo "ncu exit $?"
ncu --import "$OUT/ncu.ncu-rep" --page details > "$OUT/details.txt" 2>&1
ncu --import "$OUT/ncu.ncu-rep" --page source --csv --print-source sass > "$OUT/sass.csv" 2>&1
grep -E "Duration|DRAM Throughput|Registers|Warp Cycles Per Issued|Active Warps" "$OUT/details.txt" | head -20
python3 benches/explore/ncu-bwd/stalls.py "$OUT/sass.csv" ${WARP_ROWS:-} | tee "$OUT/stalls.txt"
