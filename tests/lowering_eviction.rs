//! Loads and stores with an eviction policy lower to Triton's PTX (the L1 eviction priority plus
//! an L2 cache policy) at every access width — 16-byte vectors, narrower groups under a ragged
//! mask, single elements through a strided or scalar pointer — and assemble for sm_90 where ptxas
//! is installed; the default policy keeps plain loads and stores.

use tritonite::lang::{build_kernel, DType, Eviction, Kernel};
use tritonite::lowering::{compile, ptxas, CompileOptions};

/// One warp (8 elements a thread); as a launcher specializes: both pointers 16-byte aligned, `n`
/// a multiple of 16.
fn options() -> CompileOptions {
    CompileOptions { num_warps: 1, divisibility: vec![(0, 16), (1, 16), (2, 16)], ..CompileOptions::default() }
}

/// `y = x · 2` over a block of `block` (`stride` apart; `stride` 0: one scalar) under a mask, the
/// load with `load` and the store with `store`.
fn kernel(dtype: DType, stride: i64, load: Eviction, store: Eviction) -> Kernel {
    let name = format!("evict_{}_{stride}_{load:?}_{store:?}", dtype.name());
    build_kernel(&name, |k| {
        let x = k.ptr_arg("x", dtype);
        let y = k.mut_ptr_arg("y", dtype);
        let n = k.scalar_arg("n", DType::I32);
        if stride == 0 {
            let ok = n.gt(0);
            let v = k.load_masked_evict(x, ok, 0.0, load);
            k.store_masked_evict(y, v * 2.0, ok, store);
        } else {
            let offs = if stride == 1 { k.arange(0, 256) } else { k.arange(0, 256) * stride };
            let ok = offs.lt(n);
            let v = k.load_masked_evict(x + offs, ok, 0.0, load);
            k.store_masked_evict(y + offs, v * 2.0, ok, store);
        }
    })
    .expect("the kernel builds")
}

#[test]
fn evicting_accesses_lower_to_hinted_ptx() {
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for stride in [1, 2, 0] {
            for (load, store) in [(Eviction::Last, Eviction::First), (Eviction::First, Eviction::Last)] {
                let k = kernel(dtype, stride, load, store);
                let ptx = compile(&k, &options()).unwrap_or_else(|e| panic!("{}: {e}", k.name)).ptx;
                for (op, policy) in [("ld", load), ("st", store)] {
                    let kind = policy.name().expect("a policy");
                    let access = format!("{op}.global.L1::{kind}.L2::cache_hint");
                    assert!(ptx.contains(&access), "{}: no `{access}` in\n{ptx}", k.name);
                    let create = format!("createpolicy.fractional.L2::{kind}.b64");
                    assert!(ptx.contains(&create), "{}: no `{create}`", k.name);
                }
                // Contiguous blocks keep 16-byte accesses.
                if stride == 1 {
                    assert!(ptx.contains("cache_hint.v4.b32"), "{}: accesses narrower than 16 bytes\n{ptx}", k.name);
                }
                assert!(!ptx.contains("ld.global.b") && !ptx.contains("ld.global.v"), "{}: a plain load", k.name);
                if ptxas::find_ptxas().is_some() {
                    ptxas::assemble(&ptx, "sm_90").unwrap_or_else(|e| panic!("{}: {e}", k.name));
                }
            }
        }
    }
}

#[test]
fn the_default_policy_keeps_plain_accesses() {
    let k = kernel(DType::BF16, 1, Eviction::Normal, Eviction::Normal);
    let ptx = compile(&k, &options()).expect("compiles").ptx;
    assert!(!ptx.contains("cache_hint") && !ptx.contains("createpolicy"), "hints without a policy:\n{ptx}");
    assert!(ptx.contains("ld.global.v4") || ptx.contains("ld.global.nc.v4"), "no 16-byte load:\n{ptx}");
}
