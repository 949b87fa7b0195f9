"""Peer LayerNorm, softmax and cross-entropy measurements on one GPU, in one run (issue 8).

The companion of ../shared/anchors/peers.py (RMSNorm only), timed the same way: triton's do_bench
median, forward and backward separately, a device-to-device copy as the ceiling. Peers: torch eager,
torch.compile, Liger-Kernel and Quack when importable. Writes $OUT/peers_ops.json; `tritonite bench
--ops --peers $OUT/peers_ops.json` merges it with ours.

Bytes counted (what must move): LayerNorm fwd x + y (+ w, b), bwd x + dy + dx (+ dw, db);
softmax fwd x + y, bwd y + dy + dx; cross-entropy fwd logits (+ targets, losses), bwd logits read +
gradient written (+ targets). Liger's cross-entropy writes the gradient during its forward
(its backward only scales it), so its split between the passes differs from the others'.
"""
import json, os, sys
import torch
import torch.nn.functional as F
from triton.testing import do_bench

torch.manual_seed(0)
dev = "cuda"
OUT = os.environ.get("OUT", ".")
DT = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
SHAPES = {
    "layernorm": [(32768, 4096, "bf16"), (16384, 1000, "f32"), (4096, 8192, "bf16"), (32768, 1024, "bf16")],
    "softmax": [(32768, 4096, "bf16"), (16384, 1000, "f32"), (4096, 32768, "bf16"), (1024, 262144, "bf16")],
    "cross_entropy": [(4096, 32000, "bf16"), (4096, 128256, "bf16"), (1024, 262144, "bf16"), (8192, 50257, "f32")],
}
only_ops = os.environ.get("OPS")
if only_ops:
    SHAPES = {k: v for k, v in SHAPES.items() if k in only_ops.split(",")}
IGNORE = -100


def bench(fn):
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def copy_bw():
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device=dev).random_(0, 255)
    b = torch.empty_like(a)
    return 2 * n / (bench(lambda: b.copy_(a)) * 1e-3) / 1e9


torch._dynamo.config.recompile_limit = 256
torch._dynamo.config.cache_size_limit = 256

# Each op: peer name -> (forward(inputs) -> out, backward(inputs, out, grad) -> None or None).
# Autograd peers time `out.backward(grad)`; quack's functional kernels time their bwd call.
def ln_eager(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)


def sm_eager(x):
    return torch.softmax(x, dim=-1)


def ce_eager(x, t):
    return F.cross_entropy(x, t, ignore_index=IGNORE, reduction="mean")


peers = {
    "layernorm": {"torch": ln_eager, "torch.compile": torch.compile(ln_eager, dynamic=False)},
    "softmax": {"torch": sm_eager, "torch.compile": torch.compile(sm_eager, dynamic=False)},
    "cross_entropy": {"torch": ce_eager, "torch.compile": torch.compile(ce_eager, dynamic=False)},
}
functional = {}  # (op, peer) -> (fwd(inputs) -> saved, bwd(inputs, saved, grad))
try:
    from liger_kernel.ops.layer_norm import LigerLayerNormFunction
    from liger_kernel.ops.softmax import LigerSoftmaxFunction
    from liger_kernel.ops.cross_entropy import LigerCrossEntropyFunction

    peers["layernorm"]["liger"] = lambda x, w, b: LigerLayerNormFunction.apply(x, w, b, 1e-5)
    peers["softmax"]["liger"] = lambda x: LigerSoftmaxFunction.apply(x)
    peers["cross_entropy"]["liger"] = lambda x, t: LigerCrossEntropyFunction.apply(x, t, None, IGNORE)[0]
except Exception as e:
    print("liger unavailable:", repr(e)[:200])
try:
    from quack.softmax import softmax as quack_softmax
    from quack.cross_entropy import cross_entropy as quack_ce
    from quack.rmsnorm import layernorm_fwd, layernorm_bwd

    peers["softmax"]["quack"] = quack_softmax
    peers["cross_entropy"]["quack"] = lambda x, t: quack_ce(x, t, ignore_index=IGNORE, reduction="mean")
    functional[("layernorm", "quack")] = (
        lambda x, w, b: layernorm_fwd(x, w.float(), b.float(), eps=1e-5, return_rstd=True, return_mean=True),
        lambda x, w, b, saved, dy: layernorm_bwd(x, w.float(), dy, saved[1], saved[2], has_bias=True),
    )
except Exception as e:
    print("quack unavailable:", repr(e)[:300])
only = os.environ.get("PEERS")


def inputs(op, M, N, dt):
    if op == "layernorm":
        x = torch.randn(M, N, device=dev, dtype=dt)
        w = (torch.rand(N, device=dev) + 0.5).to(dt)
        b = torch.randn(N, device=dev).to(dt)
        return [x, w, b]
    if op == "softmax":
        return [torch.randn(M, N, device=dev, dtype=dt) * 3]
    x = torch.randn(M, N, device=dev, dtype=dt) * 2
    t = torch.randint(0, N, (M,), device=dev)
    t[::7] = IGNORE
    return [x, t]


def reference(op, args):
    if op == "layernorm":
        x, w, b = (a.double() for a in args)
        return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)
    if op == "softmax":
        return torch.softmax(args[0].double(), dim=-1)
    return F.cross_entropy(args[0].double(), args[1], ignore_index=IGNORE, reduction="mean")


def nbytes(op, M, N, es):
    if op == "layernorm":
        return 2 * M * N * es + 2 * N * es + 8 * M, 3 * M * N * es + 4 * N * es
    if op == "softmax":
        return 2 * M * N * es, 3 * M * N * es
    return M * N * es + 12 * M, 2 * M * N * es + 8 * M


rows = []
ceiling = copy_bw()


def save():
    # After every row: a run stopped at its time limit keeps what it measured.
    json.dump({"device": torch.cuda.get_device_name(), "copy_GBs": ceiling, "rows": rows},
              open(f"{OUT}/peers_ops.json", "w"), indent=1)


print(f"device {torch.cuda.get_device_name()}  copy {ceiling:.0f} GB/s (read+write)")
for op, shapes in SHAPES.items():
    names = list(peers[op]) + [p for (o, p) in functional if o == op]
    if only:
        names = [p for p in names if p in only.split(",")]
    for (M, N, dn) in shapes:
        dt = DT[dn]
        es = torch.finfo(dt).bits // 8
        args = inputs(op, M, N, dt)
        ref = reference(op, args)
        fwd_bytes, bwd_bytes = nbytes(op, M, N, es)
        for name in names:
            row = {"op": op, "peer": name, "M": M, "N": N, "dtype": dn}
            try:
                if (op, name) in functional:
                    fwd, bwd = functional[(op, name)]
                    saved = fwd(*args)
                    y = saved[0]
                    row["fwd_ms"] = bench(lambda: fwd(*args))
                    dy = torch.randn_like(y)
                    row["bwd_ms"] = bench(lambda: bwd(*args, saved, dy))
                else:
                    fn = peers[op][name]
                    y = fn(*args)
                    row["fwd_ms"] = bench(lambda: fn(*args))
                    grads = [a.detach().clone().requires_grad_(True) if a.is_floating_point() else a for a in args]
                    out = fn(*grads)
                    dy = torch.ones_like(out) if out.dim() == 0 else torch.randn_like(out)

                    def bwd():
                        for g in grads:
                            if g.is_floating_point():
                                g.grad = None
                        out.backward(dy, retain_graph=True)

                    bwd()
                    row["bwd_ms"] = bench(bwd)
                row["rel_err"] = ((y.double() - ref).norm() / ref.norm()).item()
                row["fwd_GBs"] = fwd_bytes / (row["fwd_ms"] * 1e-3) / 1e9
                row["bwd_GBs"] = bwd_bytes / (row["bwd_ms"] * 1e-3) / 1e9
            except Exception as e:
                row["error"] = repr(e)[:300]
            rows.append(row)
            print(json.dumps(row), flush=True)
            save()
        del args, ref
        torch.cuda.empty_cache()

save()
