#!/usr/bin/env bash
# Here, no GPU needed: a kernel variant's registers and SASS instruction mix, from the CLI's PTX
# through ptxas and nvdisasm (installed on first use from PyPI into the toolkit folder), to see
# what a lowering change does to the code before spending device time on it.
#   bash benches/explore/sass-count.sh KERNEL N DTYPE [KNOB=VALUE ...]
#   e.g. bash benches/explore/sass-count.sh rmsnorm-bwd 262144 bf16 BLOCK_SIZE=16384 CLUSTER=16 \
#          PREFETCH=1 STAGED=1 ROWS=1 num_warps=16
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/cuda-env.sh
kernel=${1:?kernel}; n=${2:?N}; dtype=${3:?dtype}; shift 3
nvdisasm="$TRITONITE_TOOLKIT_DIR/nvidia/cu13/bin/nvdisasm"
if [ ! -x "$nvdisasm" ]; then
  tmp=$(mktemp -d)
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "$tmp" nvidia-cuda-nvdisasm >&2
  cp "$tmp/nvidia/cu13/bin/nvdisasm" "$nvdisasm"; rm -rf "$tmp"
fi
sets=(); for s in "$@"; do sets+=(--set "$s"); done
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cargo build -q --release --bin tritonite
./target/release/tritonite compile "$kernel" --dtype "$dtype" --n "$n" "${sets[@]}" --emit ptx \
  | grep -v '^ptxas' > "$work/k.ptx"
ptxas -arch=sm_90a -O3 -v "$work/k.ptx" -o "$work/k.cubin" 2>&1 | grep -E "Used|spill"
"$nvdisasm" -c "$work/k.cubin" | grep -E '^\s+/\*[0-9a-f]{4}\*/' \
  | sed -E 's#^\s+/\*[0-9a-f]+\*/\s+##; s#^@!?U?P[0-9T]+ ##' | awk '{print $1}' | sed 's/\..*//; s/;//' \
  | sort | uniq -c | sort -rn | awk '{t += $1; s = s sprintf("%s %d, ", $2, $1)} END {print t " SASS instructions: " s}'
