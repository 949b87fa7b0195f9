#!/usr/bin/env bash
# Runs the framework adapters' GPU tests (candle and burn: gradient checks, gradients that must
# flow, the examples' training against each framework's own RMSNorm) on the GPU machine.
#   build here:  . scripts/cuda-env.sh && bash scripts/device-build.sh autograd   (-> .device-ag/)
#   run there:   bash scripts/device-autograd.sh      (device carry: [".device-ag"])
# candle links the CUDA libraries (libcublas.so.13, libcurand.so.10, libcudart.so.13): they are
# looked up in the machine's CUDA toolkit and in its Python's nvidia-* wheels.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/tritonite-out}"; mkdir -p "$out"
bin=.device-ag/autograd_gpu
[ -x "$bin" ] || { xz -d -k -f "$bin.xz" && chmod +x "$bin"; }
dirs=$( { ls -d /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib 2>/dev/null
          python3 -c 'import nvidia, os; [print(os.path.join(p, d, "lib")) for p in nvidia.__path__ for d in os.listdir(p)]' 2>/dev/null
          python3 -c 'import nvidia, os; [print(os.path.join(p, "cu13", "lib")) for p in nvidia.__path__]' 2>/dev/null
        } | while read -r d; do [ -d "$d" ] && echo "$d"; done | tr '\n' ':')
export LD_LIBRARY_PATH="${dirs}${LD_LIBRARY_PATH:-}"
for lib in libcublas.so.13 libcurand.so.10 libcudart.so.13 libcuda.so.1; do
  found=$(echo "$LD_LIBRARY_PATH" | tr ':' '\n' | while read -r d; do [ -n "$d" ] && [ -e "$d/$lib" ] && echo "$d"; done | head -1)
  echo "$lib: ${found:-system default}"
done
ldd "$bin" | grep -i "not found" && echo "missing libraries above"
export TRITONITE_CACHE_DIR="$out/kernel-cache" TRITONITE_AUTOTUNE=off
"$bin" --test-threads=1 --nocapture 2>&1 | tee "$out/autograd.log" | grep -vE "^(test .*\.\.\. ok)$" | tail -80
echo "exit: ${PIPESTATUS[0]}"
