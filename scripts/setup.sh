#!/usr/bin/env bash
# One-command setup of a fresh Debian 12 machine for building and testing tritonite.
# Idempotent: re-running it only checks what is already there.
#   - LLVM/MLIR 22 from Debian (what melior 0.27 links against)
#   - ptxas/nvcc 13.0 from PyPI into $TRITONITE_TOOLKIT_DIR (no GPU or driver needed)
#   - link stubs of the CUDA libraries there, for the `candle` feature (scripts/cuda-env.sh)
# The build environment (MLIR_SYS_220_PREFIX, …) lives in .cargo/config.toml.
set -euo pipefail

APT_PACKAGES=(libmlir-22-dev mlir-22-tools llvm-22-dev libclang-22-dev libpolly-22-dev
              libzstd-dev libz3-dev libxml2-dev zlib1g-dev pkg-config)
TOOLKIT_DIR="${TRITONITE_TOOLKIT_DIR:-$HOME/.local/share/tritonite/cuda-13.0}"
# Pinned together: unpinned dependencies pull 13.5, whose PTX ISA the H100 machine's driver rejects.
PIP_PACKAGES=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
              nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
test -x /usr/lib/llvm-22/bin/mlir-opt || { echo "setup: mlir-opt 22 missing after install" >&2; exit 1; }

if [ ! -x "$TOOLKIT_DIR/nvidia/cu13/bin/ptxas" ]; then
  echo "setup: installing ptxas 13.0 into $TOOLKIT_DIR"
  # One pip command into one folder: separate installs into one --target do not merge.
  python3 -m pip install -q --disable-pip-version-check --no-warn-script-location \
    --target "$TOOLKIT_DIR" "${PIP_PACKAGES[@]}"
fi
"$TOOLKIT_DIR/nvidia/cu13/bin/ptxas" --version | tail -n 1

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi

# The `candle` feature links the CUDA libraries (candle's choice): stand-ins for linking on a
# machine without them, generated from cudarc's declarations (scripts/cuda-link-stubs.sh).
CU13="$TOOLKIT_DIR/nvidia/cu13"
ln -sf libcudart.so.13 "$CU13/lib/libcudart.so"
if [ ! -e "$CU13/lib/stubs/libnccl.so" ]; then
  echo "setup: generating CUDA link stubs in $CU13/lib/stubs"
  cargo fetch --manifest-path "$(dirname "$0")/../Cargo.toml" -q
  cudarc_src=$(cargo metadata --manifest-path "$(dirname "$0")/../Cargo.toml" --format-version 1 -q \
    | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc").rsplit("/",1)[0])')
  bash "$(dirname "$0")/cuda-link-stubs.sh" "$cudarc_src" "$CU13/lib/stubs"
fi
echo "setup: ok (LLVM/MLIR 22 in /usr/lib/llvm-22, ptxas in $TOOLKIT_DIR/nvidia/cu13/bin)"
