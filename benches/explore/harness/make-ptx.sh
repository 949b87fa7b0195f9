#!/usr/bin/env bash
# Here (no GPU): the PTX and cubin of each forward variant in cases.txt, as `tritonite bench`
# launches it (ptxas with default options, as the runtime assembles), into the git-ignored
# benches/explore/harness/ptx/LABEL.{ptx,cubin} (run after `cargo build --release`; carry that
# folder with .device to the GPU machine). Variants with TRITONITE_NO_RSTD, TRITONITE_RSTD_LAST,
# TRITONITE_EXACT_N or TRITONITE_EXACT_M need session 21's experiment switches applied first
# (`git apply benches/explore/harness/switches.patch`, rebuild; revert after); without them those
# variants come out identical to the base.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/cuda-env.sh
ptxas_bin=$(command -v ptxas || echo "$HOME/.local/share/tritonite/cuda-13.0/nvidia/cu13/bin/ptxas")
rm -rf benches/explore/harness/ptx && mkdir -p benches/explore/harness/ptx
grep -v '^#' benches/explore/harness/cases.txt | while read -r label m n dt bs rows cl pf progs w env1 env2 env3; do
  sets=(--set BLOCK_SIZE=$bs --set ROWS=$rows --set CLUSTER=$cl --set num_warps=$w)
  [ "$pf" != 0 ] && sets+=(--set PREFETCH=$pf)
  p=benches/explore/harness/ptx/$label.ptx
  env ${env1:-} ${env2:-} ${env3:-} ./target/release/tritonite compile rmsnorm-fwd --dtype "$dt" --n "$n" "${sets[@]}" --emit ptx > "$p"
  "$ptxas_bin" -arch=sm_90 "$p" -o "${p%.ptx}.cubin"
done
ls benches/explore/harness/ptx
