"""Our forward kernels timed by the peers' harness: each forward variant of cases.txt, launched
raw through libcuda (ctypes) from its cubin, timed with `triton.testing.do_bench` exactly as
../shared/anchors/peers.py times the peers, next to torch.compile's forward of the same shape
(through torch, and its Triton kernel launched raw the same way as ours, N <= 8192).

Questions it answers: is a gap between our `tritonite bench` and the peers' numbers in the
kernels or in the two harnesses (our bench times the same launches with its own CUDA events and
L2 flush)? And what does a variant of our kernel (made by make-ptx.sh) cost, in the peers'
harness? Each shape's launches are timed in ROUNDS (default 5) rotations over all of them, so none
gains from when it ran; the table gives each one's median of its rounds' do_bench medians. Every
output is checked against an fp64 reference before timing. Run on the GPU machine from the
repository root, after make-ptx.sh ran here (see run.sh):
    ROUNDS=5 python3 benches/explore/harness/ptx_do_bench.py
"""
import ctypes, os, sys
import torch
import torch.nn.functional as F
from triton.testing import do_bench

HERE = os.path.dirname(os.path.abspath(__file__))
DT = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
cuda = ctypes.CDLL("libcuda.so.1")
P = ctypes.c_void_p


def check(r, what):
    if r != 0:
        raise RuntimeError(f"{what}: CUresult {r}")


class LaunchAttr(ctypes.Structure):
    # CUlaunchAttribute: id, 4 bytes of padding, a 64-byte value (clusterDim: three uints first).
    _fields_ = [("id", ctypes.c_uint), ("pad", ctypes.c_char * 4), ("dims", ctypes.c_uint * 3),
                ("rest", ctypes.c_char * 52)]


class LaunchConfig(ctypes.Structure):
    _fields_ = [("gx", ctypes.c_uint), ("gy", ctypes.c_uint), ("gz", ctypes.c_uint),
                ("bx", ctypes.c_uint), ("by", ctypes.c_uint), ("bz", ctypes.c_uint),
                ("shared", ctypes.c_uint), ("stream", P), ("attrs", ctypes.POINTER(LaunchAttr)),
                ("num_attrs", ctypes.c_uint)]


cuda.cuLaunchKernel.argtypes = [P, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
                                ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, P, P, P]
cuda.cuLaunchKernelEx.argtypes = [ctypes.POINTER(LaunchConfig), P, P, P]


def load(path, name, cluster):
    image = open(path, "rb").read()
    mod, fn = P(), P()
    check(cuda.cuModuleLoadData(ctypes.byref(mod), ctypes.c_char_p(image)), f"loading {path}")
    check(cuda.cuModuleGetFunction(ctypes.byref(fn), mod, name.encode()), f"finding {name}")
    if cluster > 8:
        check(cuda.cuFuncSetAttribute(fn, 14, 1), "non-portable clusters")  # NON_PORTABLE_CLUSTER_SIZE_ALLOWED
    return fn


def launcher(fn, grid, threads, cluster, values, shared=0):
    """A closure launching `fn` on torch's current stream with `values` (ctypes scalars) and
    `shared` bytes of dynamic shared memory."""
    params = (P * len(values))(*[ctypes.cast(ctypes.pointer(v), P) for v in values])
    stream = P(torch.cuda.current_stream().cuda_stream)
    if cluster == 1:
        def go():
            check(cuda.cuLaunchKernel(fn, grid, 1, 1, threads, 1, 1, shared, stream, params, None), "launch")
        go.keep = values
        return go
    attr = LaunchAttr(id=4)  # CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION
    attr.dims[0], attr.dims[1], attr.dims[2] = cluster, 1, 1
    cfg = LaunchConfig(grid, 1, 1, threads, 1, 1, shared, stream, ctypes.pointer(attr), 1)

    def go():
        check(cuda.cuLaunchKernelEx(ctypes.byref(cfg), fn, params, None), "launch (clusters)")
    go.keep = values
    return go


def bench(fn):
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def rel_err(y, ref):
    """Largest error of `y` relative to the largest value of the fp64 reference."""
    return ((y.double() - ref).abs().max() / ref.abs().max()).item()


def triton_kernels(cache, before):
    """The cubins Triton compiled into `cache` since `before` (a set of paths), with metadata."""
    import glob, json
    out = []
    for meta in sorted(glob.glob(os.path.join(cache, "*", "*.json"))):
        if meta in before or os.path.basename(meta).startswith("__grp__"):
            continue
        cubin = meta[:-5] + ".cubin"
        if os.path.exists(cubin):
            out.append((cubin, json.load(open(meta))))
    return out


def triton_launchers(cubins, x, wt, y, m, n, ref):
    """torch.compile's cubins for this shape, each launched raw with the grid (rows a program, from
    the largest down) at which its output is right: (label, launch) pairs."""
    import re
    out = []
    for cubin, meta in cubins:
        ptx_path = cubin[:-6] + ".ptx"
        ptx = open(ptx_path).read() if os.path.exists(ptx_path) else ""
        nparams = len(re.findall(r"^\s*\.param .*_param_\d+", ptx, re.M)) if ptx else 7
        shared = meta.get("shared", 0)
        if shared > 48 * 1024:
            continue
        fn = load(cubin, meta["name"], 1)
        c = ctypes
        values = [c.c_uint64(x.data_ptr()), c.c_uint64(wt.data_ptr()), c.c_uint64(y.data_ptr()),
                  c.c_int32(m), c.c_int32(n)] + [c.c_uint64(0)] * (nparams - 5)
        for rows in [128, 64, 32, 16, 8, 4, 2, 1]:
            go = launcher(fn, m // rows, 32 * meta["num_warps"], 1, values, shared)
            y.fill_(float("nan"))
            go()
            torch.cuda.synchronize()
            if rel_err(y, ref) < 1e-2:
                if os.environ.get("OUT") and ptx:
                    with open(os.path.join(os.environ["OUT"], f"torch-compile-{m}x{n}-w{meta['num_warps']}-r{rows}.ptx"), "w") as f:
                        f.write(ptx)
                tag = os.path.basename(os.path.dirname(cubin))[:6]  # inductor may compile several configs
                out.append((f"torch.compile's kernel {tag} raw ({meta['num_warps']} warps, {rows} rows)", go))
                break
    return out


ROUNDS = int(os.environ.get("ROUNDS", "5"))


def main():
    import glob, tempfile
    torch.manual_seed(0)
    cache = os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp(prefix="triton-cache-"))
    compiled = torch.compile(lambda x, w, eps: F.rms_norm(x, (x.shape[-1],), w, eps), dynamic=False)
    shapes = {}
    for line in open(os.path.join(HERE, "cases.txt")):
        if line.startswith("#") or not line.strip():
            continue
        f = line.split()
        shapes.setdefault((int(f[1]), int(f[2]), f[3]), []).append(f)
    print(f"| shape | dtype | variant | median of {ROUNDS} do_bench medians, us | range | max rel err |")
    print("|---|---|---|---|---|---|")
    for (m, n, dt), cases in shapes.items():
        dtype = DT[dt]
        x = torch.randn(m, n, device="cuda", dtype=dtype)
        wt = (torch.rand(n, device="cuda", dtype=torch.float32) + 0.5).to(dtype)
        y = torch.empty_like(x)
        rstd = torch.empty(m, device="cuda", dtype=torch.float32)
        eps = 1e-6
        ref = F.rms_norm(x.double(), (n,), wt.double(), eps)
        runs, errs = [], {}
        for f in cases:
            label = f[0]
            bs, rows, cl, pf, progs, w = map(int, f[4:10])
            tiles = -(-m // rows)
            grid = cl * (tiles if bs * cl >= n and pf == 0 else min(tiles, progs))
            fn = load(os.path.join(HERE, "ptx", f"{label}.cubin"), f"rms_norm_fwd_{dt}_w{dt}", cl)
            c = ctypes
            values = [c.c_uint64(x.data_ptr()), c.c_uint64(wt.data_ptr()), c.c_uint64(y.data_ptr()),
                      c.c_uint64(rstd.data_ptr()), c.c_int32(m), c.c_int32(n), c.c_int64(n), c.c_int64(n),
                      c.c_float(eps), c.c_float(0.0)]
            go = launcher(fn, grid, 32 * w, cl, values)
            y.fill_(float("nan"))
            go()
            torch.cuda.synchronize()
            errs[label] = rel_err(y, ref)
            runs.append((label, go))
            # ROTATE=k: also the same launch over k copies of x and y in turn (as `tritonite bench`
            # rotates its inputs past the L2), to see whether anything survives do_bench's flush.
            k = int(os.environ.get("ROTATE", "0"))
            if k > 1 and label == cases[0][0]:
                xs = [x] + [x.clone() for _ in range(k - 1)]
                ys = [y] + [torch.empty_like(y) for _ in range(k - 1)]
                gos = []
                for xi, yi in zip(xs, ys):
                    v = list(values)
                    v[0], v[2] = c.c_uint64(xi.data_ptr()), c.c_uint64(yi.data_ptr())
                    gos.append(launcher(fn, grid, 32 * w, cl, v))
                state = {"i": 0, "keep": (xs, ys)}

                def rotated(gos=gos, state=state):
                    state["i"] += 1
                    gos[state["i"] % len(gos)]()
                runs.append((f"{label}, x and y rotated over {k} copies", rotated))
        before = set(glob.glob(os.path.join(cache, "*", "*.json")))
        compiled(x, wt, eps)
        torch.cuda.synchronize()
        runs.append(("torch.compile (do_bench as peers.py)", lambda: compiled(x, wt, eps)))
        if os.environ.get("SKIP_TC"):
            runs = runs[:-1]
        elif n <= 8192:
            runs += triton_launchers(triton_kernels(cache, before), x, wt, y, m, n, ref)
        times = {label: [] for label, _ in runs}
        # Rounds over every variant in turn, so none gains from when it ran.
        for _ in range(ROUNDS):
            for label, go in runs:
                times[label].append(bench(go) * 1e3)
        for label, _ in runs:
            t = sorted(times[label])
            err = f"{errs[label]:.1e}" if label in errs else "-"
            print(f"| {m}x{n} | {dt} | {label} | {t[len(t) // 2]:.2f} | {t[0]:.2f}-{t[-1]:.2f} | {err} |", flush=True)
            if os.environ.get("PRINT_ROUNDS"):
                print("    rounds in order:", " ".join(f"{v:.2f}" for v in times[label]))
        del x, y, rstd
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
