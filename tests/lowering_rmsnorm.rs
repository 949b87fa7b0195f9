//! Every RMSNorm variant in a grid of configs × dtypes lowers through MLIR to PTX, assembles with
//! ptxas for sm_90 without spills, and uses 16-byte global loads where N is aligned.

use tritonite::kernels::rmsnorm::{self, RmsNormConfig};
use tritonite::lang::{DType, Kernel};
use tritonite::lowering::{compile, ptxas, CompileOptions};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// Options with every pointer and integer argument marked 16-aligned (what the launcher picks for
/// an aligned N).
fn aligned(kernel: &Kernel, num_warps: u32) -> CompileOptions {
    let all = (0..kernel.params.len())
        .filter(|&i| kernel.params[i].kind.dtype() != DType::F32 || kernel.params[i].kind.is_ptr())
        .collect();
    CompileOptions { num_warps, divisible_by_16: all, ..CompileOptions::default() }
}

fn check(kernel: &Kernel, opts: &CompileOptions) -> String {
    let compiled = compile(kernel, opts).unwrap_or_else(|e| panic!("{}: {e}", kernel.name));
    assert!(compiled.ptx.contains(&format!(".entry {}", kernel.name)), "{}: no entry in PTX", kernel.name);
    match ptxas::find_ptxas() {
        Some(_) => {
            let r = ptxas::assemble(&compiled.ptx, "sm_90").unwrap_or_else(|e| panic!("{}: {e}", kernel.name));
            assert_eq!((r.spill_stores, r.spill_loads), (0, 0), "{} with {opts:?} spills: {r:?}", kernel.name);
            assert!(!r.cubin.is_empty());
        }
        None => println!("ptxas not installed: skipped assembling {} (run scripts/setup.sh)", kernel.name),
    }
    compiled.ptx
}

#[test]
fn forward_variants_lower_without_spills() {
    for d in DTYPES {
        for w in [None, Some(d)] {
            for (n, block, warps) in [(4096, 4096, 8), (1000, 1024, 4), (8192, 1024, 4), (64, 64, 1), (300, 512, 2)] {
                let kernel = rmsnorm::forward(&RmsNormConfig::new(d, w, n, block)).unwrap();
                check(&kernel, &aligned(&kernel, warps));
            }
        }
    }
}

#[test]
fn backward_variants_lower_without_spills() {
    for d in DTYPES {
        for w in [None, Some(d)] {
            for (n, block, warps) in [(4096, 4096, 8), (1000, 1024, 4), (8192, 1024, 4)] {
                let kernel = rmsnorm::backward(&RmsNormConfig::new(d, w, n, block)).unwrap();
                check(&kernel, &aligned(&kernel, warps));
            }
        }
        let kernel = rmsnorm::dw_reduce(d, 256).unwrap();
        check(&kernel, &aligned(&kernel, 4));
    }
}

#[test]
fn aligned_forward_uses_16_byte_loads() {
    for (d, want) in
        [(DType::F32, "ld.global.v4.b32"), (DType::BF16, "ld.global.v4.b32"), (DType::F16, "ld.global.v4.b32")]
    {
        let kernel = rmsnorm::forward(&RmsNormConfig::new(d, Some(d), 4096, 4096)).unwrap();
        let ptx = check(&kernel, &aligned(&kernel, 8));
        assert!(ptx.contains(want), "{d}: no {want} in the forward PTX");
        // Unaligned (nothing known about N or the strides): no vector loads of x.
        let plain = compile(&kernel, &CompileOptions { num_warps: 8, ..CompileOptions::default() }).unwrap();
        assert!(!plain.ptx.contains("ld.global.v4"), "{d}: vector loads without alignment facts");
    }
}
