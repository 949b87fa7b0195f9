"""Peers of `tritonite bench-dot` on one GPU, in one run (issue 9): cuBLAS through torch.matmul
for the square bf16 matmuls, and for y = rmsnorm(x; g) · Wᵀ at M in {1, 16, 64, 256, 4096},
K = N = 4096: torch eager (F.rms_norm then F.linear), torch.compile of the same two ops, and
cuBLAS's linear alone (to add to our RMSNorm for "our RMSNorm + cuBLAS"). Timed like peers.py:
triton's do_bench median (ms → µs). Writes $OUT/peers_dot.json.
"""
import json, os
import torch
import torch.nn.functional as F
from triton.testing import do_bench

torch.manual_seed(0)
dev, dt = "cuda", torch.bfloat16
OUT = os.environ.get("OUT", ".")
SIZES = [int(s) for s in os.environ.get("SIZES", "1024,2048,4096,8192").split(",")]
ROWS = [int(s) for s in os.environ.get("ROWS", "1,16,64,256,4096").split(",")]


def us(fn):
    return do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3


rows = []
for s in SIZES:
    a = torch.randn(s, s, device=dev, dtype=dt)
    b = torch.randn(s, s, device=dev, dtype=dt)
    t = us(lambda: torch.matmul(a, b))
    rows.append({"what": "cublas matmul", "m": s, "n": s, "k": s, "us": t, "tflops": 2 * s**3 / (t * 1e-6) / 1e12})
    print(f"cublas matmul {s}^3: {t:.1f} us {rows[-1]['tflops']:.1f} TFLOP/s", flush=True)

N = K = 4096
w = torch.randn(N, K, device=dev, dtype=dt) / 64
g = 1 + 0.25 * torch.randn(K, device=dev, dtype=dt)


def two_ops(x):
    return F.linear(F.rms_norm(x, (K,), g, 1e-6), w)


compiled = torch.compile(two_ops)
for m in ROWS:
    x = torch.randn(m, K, device=dev, dtype=dt)
    for name, fn in [("torch rmsnorm+linear", lambda: two_ops(x)), ("torch.compile rmsnorm+linear", lambda: compiled(x)),
                     ("cublas linear", lambda: F.linear(x, w))]:
        t = us(fn)
        rows.append({"what": name, "m": m, "n": N, "k": K, "us": t, "tflops": 2 * m * N * K / (t * 1e-6) / 1e12})
        print(f"{name} {m}x{N}x{K}: {t:.1f} us", flush=True)

with open(os.path.join(OUT, "peers_dot.json"), "w") as f:
    json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)
