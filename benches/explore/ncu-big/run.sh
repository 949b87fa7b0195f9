#!/usr/bin/env bash
# On the GPU machine, after scripts/device-bench.sh's call 1 (quack's libraries in $SITE); carry
# .device and .device-site2. ncu (clocks not locked) on the RMSNorm forward of M x N bf16 (default
# 1024 x 262144): Quack's kernel, ours as `tritonite bench` launches it (the tuned config), and
# ours at each config of CONFIGS (';'-separated, as `tritonite autotune --configs` takes them;
# launch 24 of a one-config tuning run is the config's), with the same sections and metrics for
# all, so differences have numbers. Summaries on stdout; reports and details under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../.."
SITE="${SITE:-/tmp/tritonite-site}"
if ls .device-site2/*.whl >/dev/null 2>&1; then
  for w in .device-site2/*.whl; do python3 -m zipfile -e "$w" "$SITE" >/dev/null || echo "could not unzip $w"; done
fi
source benches/explore/tuned-cli.sh
M=${M:-1024}; N=${N:-262144}
metrics="gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,\
sm__cycles_active.min,sm__cycles_active.max,sm__cycles_active.avg,sm__ctas_launched.sum,sm__ctas_launched.min,sm__ctas_launched.max,\
smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,\
launch__grid_size,launch__block_size,launch__registers_per_thread,launch__shared_mem_per_block_dynamic,\
launch__occupancy_limit_registers,launch__occupancy_limit_shared_mem,launch__occupancy_per_cluster_size,\
smsp__inst_executed_op_global_ld.sum,smsp__inst_executed_op_shared_ld.sum,smsp__inst_executed_op_ldgsts.sum,\
l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,smsp__warp_issue_stalled_long_scoreboard_per_warp_active.pct,\
regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio"
sections=(--section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats)
NCU=(ncu --clock-control none "${sections[@]}" --metrics "$metrics")
summary() {  # $1: report name
  [ -f "$OUT/$1.ncu-rep" ] || { echo "== $1: no report"; return; }
  ncu --import "$OUT/$1.ncu-rep" --page details > "$OUT/$1-details.txt" 2>&1
  ncu --import "$OUT/$1.ncu-rep" --page raw --csv > "$OUT/$1-raw.csv" 2>&1
  echo "== $1"
  python3 benches/explore/ncu-big/summary.py "$OUT/$1-raw.csv"
}
PYTHONPATH="$SITE:$SITE/nvidia_cutlass_dsl/dsl_packages" timeout 240 "${NCU[@]}" --profile-from-start off \
  -o "$OUT/quack-fwd" -f python3 benches/explore/ncu-big/quack_fwd.py "$M" "$N" > "$OUT/quack-fwd.log" 2>&1
echo "quack ncu exit $?: $(grep -E 'rel_err' "$OUT/quack-fwd.log")"; summary quack-fwd
timeout 240 "${NCU[@]}" --kernel-name regex:rms_norm_fwd --launch-skip 5 --launch-count 1 -o "$OUT/ours-tuned" -f \
  $T bench --shapes "${M}x${N}:bf16" > "$OUT/ours-tuned.log" 2>&1
echo "ours (tuned) ncu exit $?"; summary ours-tuned
i=0
IFS=';' read -ra configs <<< "${CONFIGS:-}"
for c in "${configs[@]}"; do
  i=$((i + 1)); c="$(echo "$c" | xargs)"; [ -n "$c" ] || continue
  echo "-- config $i: $c"
  TRITONITE_CACHE_DIR=/tmp/tritonite-ncu-cache-$i timeout 240 "${NCU[@]}" --kernel-name regex:rms_norm_fwd \
    --launch-skip 24 --launch-count 1 -o "$OUT/ours-config$i" -f \
    $T autotune --force --kernel rmsnorm-fwd --shapes "${M}x${N}:bf16" --configs "$c" > "$OUT/ours-config$i.log" 2>&1
  echo "ours (config $i) ncu exit $?"; summary "ours-config$i"
done
