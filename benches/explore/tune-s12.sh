# session 12: the new winners (and the old) through the tuner, exported for benches/tuned-h100.json
set -uo pipefail
export TRITONITE_CACHE_DIR=/tmp/tune-s12
xz -d -k -f .device/tritonite.xz && chmod +x .device/tritonite
T=.device/tritonite
t(){ $T autotune --force --kernel "$1" --shapes "$2" --configs "$3" 2>&1 | tr '\r' '\n' | grep -E "sweep|final|^\| rms|Error"; }
t rmsnorm-bwd 32768x5120:bf16 "BLOCK_SIZE=4096 CLUSTER=2 PROGRAMS=132 ROWS=1 num_warps=16; BLOCK_SIZE=1024 CLUSTER=5 PROGRAMS=158 ROWS=1 num_warps=4 PREFETCH=1"
t rmsnorm-bwd 32768x8192:bf16 "BLOCK_SIZE=2048 CLUSTER=4 PROGRAMS=132 ROWS=1 num_warps=4; BLOCK_SIZE=1024 CLUSTER=8 PROGRAMS=107 ROWS=1 num_warps=4 PREFETCH=1; BLOCK_SIZE=1024 CLUSTER=8 PROGRAMS=99 ROWS=1 num_warps=4 PREFETCH=1"
t rmsnorm-bwd 4096x65536:bf16 "BLOCK_SIZE=16384 CLUSTER=4 PROGRAMS=132 ROWS=1 num_warps=16; BLOCK_SIZE=4096 CLUSTER=16 PROGRAMS=14 ROWS=1 num_warps=8 PREFETCH=1"
t rmsnorm-bwd 32768x4096:bf16 "BLOCK_SIZE=4096 CLUSTER=1 PROGRAMS=264 ROWS=1 num_warps=16; BLOCK_SIZE=1024 CLUSTER=4 PROGRAMS=231 ROWS=1 num_warps=4 PREFETCH=1"
t rmsnorm-bwd 4096x8192:bf16 "BLOCK_SIZE=2048 CLUSTER=4 PROGRAMS=132 ROWS=1 num_warps=4; BLOCK_SIZE=1024 CLUSTER=8 PROGRAMS=99 ROWS=1 num_warps=4 PREFETCH=1; BLOCK_SIZE=1024 CLUSTER=8 PROGRAMS=107 ROWS=1 num_warps=4 PREFETCH=1"
t rmsnorm-bwd 2048x8192:f32 "BLOCK_SIZE=4096 CLUSTER=2 PROGRAMS=132 ROWS=1 num_warps=16; BLOCK_SIZE=1024 CLUSTER=8 PROGRAMS=99 ROWS=1 num_warps=4 PREFETCH=1; BLOCK_SIZE=1024 CLUSTER=8 PROGRAMS=107 ROWS=1 num_warps=4 PREFETCH=1"
t rmsnorm-fwd 1024x262144:bf16 "BLOCK_SIZE=16384 CLUSTER=16 PROGRAMS=1 ROWS=1 num_warps=16; BLOCK_SIZE=16384 CLUSTER=16 PROGRAMS=7 ROWS=1 num_warps=16 PREFETCH=1"
$T cache export "$OUT/tuned-s12.json"
