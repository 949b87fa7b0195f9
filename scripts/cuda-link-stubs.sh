#!/usr/bin/env bash
# Link-time stand-ins for the CUDA libraries candle's CUDA backend links against (libcuda,
# libnvrtc, libcurand, libcublas, libcublasLt), like the toolkit's own lib64/stubs/libcuda.so:
# every function cudarc declares, each an empty body, under the real library's soname. They let
# `--features candle` link on a machine without a GPU or those libraries; at run time the real
# libraries (driver, CUDA 13 toolkit) are loaded by soname and the stubs are never used.
#   usage: cuda-link-stubs.sh CUDARC_SRC_DIR OUT_DIR
set -euo pipefail
src="$1"; out="$2"
mkdir -p "$out"
# library        soname              cudarc module
while read -r lib soname module; do
  [ -e "$out/$lib.so" ] && continue
  c="$out/$lib.c"
  grep -hoE '^\s+fn [A-Za-z_][A-Za-z0-9_]*\(' "$src/src/$module/sys/mod.rs" \
    | sed -E 's/^\s+fn ([A-Za-z0-9_]+)\(/void \1(void) {}/' | sort -u > "$c"
  gcc -shared -fPIC -Wl,-soname,"$soname" -o "$out/$soname" "$c"
  ln -sf "$soname" "$out/$lib.so"
  rm -f "$c"
done <<'LIBS'
libcuda     libcuda.so.1        driver
libnvrtc    libnvrtc.so.13      nvrtc
libcurand   libcurand.so.10     curand
libcublas   libcublas.so.13     cublas
libcublasLt libcublasLt.so.13   cublaslt
libnccl     libnccl.so.2        nccl
LIBS
