# session 13: after the lane-parallel reductions, the entries whose kernels use 16 or 32 warps or
# clusters of 16, through the tuner (their winner and neighbours), exported for tuned-h100.json
set -uo pipefail
export TRITONITE_CACHE_DIR=/tmp/tune-s13
xz -d -k -f .device/tritonite.xz && chmod +x .device/tritonite
T=.device/tritonite
t(){ $T autotune --force --kernel "$1" --shapes "$2" --configs "$3" 2>&1 | tr '\r' '\n' | grep -E "sweep|final|^\| rms|Error"; }
t rmsnorm-fwd 1024x262144:bf16 "BLOCK_SIZE=16384 CLUSTER=16 PROGRAMS=7 ROWS=1 num_warps=16 PREFETCH=1; BLOCK_SIZE=16384 CLUSTER=16 PROGRAMS=6 ROWS=1 num_warps=32 PREFETCH=1"
t rmsnorm-bwd 1024x262144:bf16 "BLOCK_SIZE=16384 CLUSTER=16 PROGRAMS=14 ROWS=1 num_warps=16; BLOCK_SIZE=16384 CLUSTER=16 PROGRAMS=33 ROWS=1 num_warps=16"
t rmsnorm-fwd 4096x8192:bf16 "BLOCK_SIZE=8192 CLUSTER=1 PROGRAMS=264 ROWS=1 num_warps=16; BLOCK_SIZE=8192 CLUSTER=1 PROGRAMS=264 ROWS=1 num_warps=8"
t rmsnorm-fwd 2048x8192:f32 "BLOCK_SIZE=8192 CLUSTER=1 PROGRAMS=264 ROWS=1 num_warps=16; BLOCK_SIZE=8192 CLUSTER=1 PROGRAMS=264 ROWS=1 num_warps=8; BLOCK_SIZE=8192 CLUSTER=1 PROGRAMS=264 ROWS=1 num_warps=32"
t rmsnorm-fwd 32768x5120:bf16 "BLOCK_SIZE=8192 CLUSTER=1 PROGRAMS=264 ROWS=1 num_warps=16; BLOCK_SIZE=8192 CLUSTER=1 PROGRAMS=264 ROWS=1 num_warps=8"
t rmsnorm-fwd 32768x8192:bf16 "BLOCK_SIZE=8192 CLUSTER=1 PROGRAMS=264 ROWS=1 num_warps=16; BLOCK_SIZE=8192 CLUSTER=1 PROGRAMS=264 ROWS=1 num_warps=8"
t rmsnorm-fwd 16384x32768:bf16 "BLOCK_SIZE=16384 CLUSTER=2 PROGRAMS=1 ROWS=1 num_warps=32; BLOCK_SIZE=16384 CLUSTER=2 PROGRAMS=1 ROWS=1 num_warps=16; BLOCK_SIZE=32768 CLUSTER=1 PROGRAMS=1 ROWS=1 num_warps=32"
t rmsnorm-fwd 4096x65536:bf16 "BLOCK_SIZE=16384 CLUSTER=4 PROGRAMS=1 ROWS=1 num_warps=16; BLOCK_SIZE=16384 CLUSTER=4 PROGRAMS=1 ROWS=1 num_warps=32"
t rmsnorm-bwd 4096x65536:bf16 "BLOCK_SIZE=4096 CLUSTER=16 PROGRAMS=14 ROWS=1 num_warps=8 PREFETCH=1; BLOCK_SIZE=4096 CLUSTER=16 PROGRAMS=13 ROWS=1 num_warps=8 PREFETCH=1"
t rmsnorm-bwd 16384x32768:bf16 "BLOCK_SIZE=2048 CLUSTER=16 PROGRAMS=33 ROWS=1 num_warps=4; BLOCK_SIZE=4096 CLUSTER=8 PROGRAMS=33 ROWS=1 num_warps=8 PREFETCH=1; BLOCK_SIZE=4096 CLUSTER=8 PROGRAMS=28 ROWS=1 num_warps=8 PREFETCH=1"
$T cache export "$OUT/tuned-s13.json"
