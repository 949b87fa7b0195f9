"""Runs torch.compile's RMSNorm forward once per shape between cudaProfilerStart/Stop, after a
warm-up, so that `ncu --profile-from-start off` sees exactly one launch of the peer's kernel per
shape. Shapes: argv as MxN:dtype (dtype f32, bf16, f16). With TORCH_LOGS=output_code the generated
Triton source (its num_warps and block sizes) is printed too.

  ncu --clock-control none --profile-from-start off --section SpeedOfLight ... \
      python3 benches/explore/peer_ncu.py 32768x8192:bf16
"""
import sys
import torch
import torch.nn.functional as F

DT = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def rms(x, w, eps):
    return F.rms_norm(x, (x.shape[-1],), w, eps)


compiled = torch.compile(rms, dynamic=False)
for arg in sys.argv[1:]:
    shape, dt = arg.split(":")
    m, n = (int(v) for v in shape.split("x"))
    x = torch.randn(m, n, device="cuda", dtype=DT[dt])
    w = torch.randn(n, device="cuda", dtype=DT[dt])
    for _ in range(5):
        compiled(x, w, 1e-6)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    compiled(x, w, 1e-6)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()
    print("profiled", arg, flush=True)
