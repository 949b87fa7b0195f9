"""Quack's RMSNorm forward of one shape, for ncu: warmed up (its JIT compile) outside the profiled
range, then one call between cudaProfilerStart and Stop (run ncu with --profile-from-start off).
Checks the output against fp64 first. Args: M N (bf16)."""
import sys
import torch
from quack.rmsnorm import rmsnorm

M, N = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
x = torch.randn(M, N, device="cuda", dtype=torch.bfloat16)
w = (torch.rand(N, device="cuda", dtype=torch.float32) + 0.5).to(torch.bfloat16)
y = rmsnorm(x, w, eps=1e-6)
xf = x.double()
ref = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * w.double()
print(f"quack {M}x{N} rel_err {((y.double() - ref).norm() / ref.norm()).item():.2e}")
for _ in range(3):
    rmsnorm(x, w, eps=1e-6)
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStart()
rmsnorm(x, w, eps=1e-6)
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStop()
