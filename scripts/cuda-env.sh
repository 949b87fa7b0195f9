# Source this (`. scripts/cuda-env.sh`) before building the `candle` feature: candle's CUDA
# backend compiles its kernels with nvcc at build time and links the CUDA libraries. Points the
# build at the CUDA 13.0 toolkit and the link stubs that scripts/setup.sh installed.
TRITONITE_TOOLKIT_DIR="${TRITONITE_TOOLKIT_DIR:-$HOME/.local/share/tritonite/cuda-13.0}"
export CUDA_ROOT="$TRITONITE_TOOLKIT_DIR/nvidia/cu13"
export NVCC="$CUDA_ROOT/bin/nvcc"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
case ":$PATH:" in *":$CUDA_ROOT/bin:"*) ;; *) export PATH="$CUDA_ROOT/bin:$PATH" ;; esac
