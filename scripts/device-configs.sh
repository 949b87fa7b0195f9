#!/usr/bin/env bash
# On the GPU machine, with the `cli` payload of scripts/device-build.sh: times hand-picked configs
# (`tritonite autotune --force --configs`, each after the heuristic) and prints every measurement.
#   bash scripts/device-configs.sh PLAN     PLAN: lines `kernel shape | config; config; ...`
#                                           (`#` starts a comment), e.g.
#   rmsnorm-fwd 4096x65536:bf16 | BLOCK_SIZE=32768 CLUSTER=2 PROGRAMS=1 ROWS=1 num_warps=32
# NCU="kernel shape regex skip... | config" (optional) then profiles, for each `skip`, launch
# `skip` of the kernels whose name matches `regex` in a one-config tuning run (launches 0-23 are
# the heuristic's, 24-47 the config's) with `ncu --clock-control none` and NCU_SECTIONS.
# EXPORT=FILE (optional) then exports the tuning cache (`tritonite cache export`), to merge into
# benches/tuned-h100.json by key.
# Everything goes to $OUT/configs.log (and $OUT/ncu.log).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/tritonite-out}"; mkdir -p "$OUT"
export TRITONITE_CACHE_DIR=/tmp/tritonite-configs-cache
xz -d -k -f .device/tritonite.xz && chmod +x .device/tritonite
T=.device/tritonite
while IFS= read -r line; do
  line="${line%%#*}"; [ -n "${line// }" ] || continue
  head="${line%%|*}"; configs="${line#*|}"
  read -r kernel shape <<<"$head"
  echo "## $kernel $shape"
  $T autotune --force --kernel "$kernel" --shapes "$shape" --configs "$configs" 2>&1 \
    | tr '\r' '\n' | sed 's/\x1b\[2K//g' | grep -E "sweep|final|^\| rms|^\| [a-z]|^Error|^Caused|^    " \
    | sed -E 's/.*\] [0-9]+\/[0-9]+ //'
done < "${1:?usage: device-configs.sh PLAN}" | tee "$OUT/configs.log"
[ -z "${EXPORT:-}" ] || $T cache export "$EXPORT"
if [ -n "${NCU:-}" ]; then
  head="${NCU%%|*}"; config="${NCU#*|}"
  read -r kernel shape regex skips <<<"$head"
  sections="${NCU_SECTIONS:-SpeedOfLight Occupancy LaunchStats WarpStateStats SchedulerStats}"
  for skip in $skips; do
    echo "## ncu $kernel $shape launch $skip"
    ncu --clock-control none -k "regex:$regex" --launch-skip "$skip" --launch-count 1 \
      $(for s in $sections; do printf -- '--section %s ' "$s"; done) \
      $T autotune --force --kernel "$kernel" --shapes "$shape" --configs "$config" 2>/dev/null \
      | grep -v "^\s*$" | grep -v "^|\|^device\|tuned now\|^==PROF==\|^    -\|^    Section:" 
  done > "$OUT/ncu.log" 2>&1
  cat "$OUT/ncu.log"
fi
