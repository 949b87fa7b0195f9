//! `dot` lowers to tensor-core PTX (`ldmatrix` + `mma.sync`) for the matmul kernel across tilings,
//! dtypes and both storages of `b`, and assembles for sm_90 where ptxas is installed.

use tritonite::kernels::matmul::kernels::matmul;
use tritonite::kernels::matmul::{MatmulConfig, MatmulSpec};
use tritonite::lang::DType;
use tritonite::lowering::{compile, ptxas, CompileOptions};

#[test]
fn matmul_lowers_to_mma() {
    let tilings = [(16, 16, 16, 1), (64, 64, 32, 4), (128, 128, 32, 8), (128, 64, 64, 4), (32, 128, 32, 4)];
    for dtype in [DType::BF16, DType::F16] {
        for b_transposed in [false, true] {
            for (i, &(block_m, block_n, block_k, warps)) in tilings.iter().enumerate() {
                let spec = MatmulSpec { dtype, out: DType::F32, b_transposed };
                let cfg =
                    MatmulConfig { block_m, block_n, block_k, group_m: 8, num_warps: warps, prefetch: i % 2 == 0 };
                cfg.check().unwrap();
                let k = matmul(&spec, &cfg).unwrap();
                // What the launcher records for aligned buffers and sizes that are multiples of 16.
                let divisibility = (0..9).map(|i| (i, 16)).collect();
                let opts = CompileOptions { num_warps: warps, divisibility, ..CompileOptions::default() };
                let c = compile(&k, &opts).unwrap_or_else(|e| panic!("{spec:?} {cfg:?}: {e}"));
                if let Some(dir) = std::env::var_os("TRITONITE_DOT_DUMP") {
                    let path =
                        std::path::Path::new(&dir).join(format!("{}_{block_m}x{block_n}x{block_k}_{i}.ptx", k.name));
                    std::fs::write(&path, &c.ptx).unwrap();
                    std::fs::write(path.with_extension("mlir"), &c.mlir).unwrap();
                }
                assert!(c.ptx.contains("mma.sync.aligned.m16n8k16"), "{cfg:?}: no mma");
                assert!(c.ptx.contains("ldmatrix.sync.aligned"), "{cfg:?}: no ldmatrix");
                if let Some(_p) = ptxas::find_ptxas() {
                    let r = ptxas::assemble(&c.ptx, "sm_90").unwrap_or_else(|e| panic!("{spec:?} {cfg:?}: {e}"));
                    eprintln!("{} {cfg:?}: {} registers, {} bytes spilled", k.name, r.registers, r.spill_stores);
                }
            }
        }
    }
}

#[test]
fn rms_norm_linear_lowers_to_mma() {
    use tritonite::kernels::rmsnorm_linear::kernels::rms_norm_linear;
    use tritonite::kernels::rmsnorm_linear::{heuristic, RmsNormLinearSpec};
    for m in [1, 16, 64, 256, 4096] {
        let cfg = heuristic(m, 4096, 4096);
        let spec = RmsNormLinearSpec { dtype: DType::BF16, out: DType::BF16 };
        let k = rms_norm_linear(&spec, &cfg).unwrap();
        let divisibility = (0..11).map(|i| (i, 16)).collect();
        let opts = CompileOptions { num_warps: cfg.num_warps, divisibility, ..CompileOptions::default() };
        let c = compile(&k, &opts).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        assert!(c.ptx.contains("mma.sync.aligned.m16n8k16"), "{cfg:?}: no mma");
        if ptxas::find_ptxas().is_some() {
            let r = ptxas::assemble(&c.ptx, "sm_90").unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
            eprintln!("{} m={m} {cfg:?}: {} registers, {} bytes spilled", k.name, r.registers, r.spill_stores);
            assert_eq!(r.spill_stores, 0, "{cfg:?} spills");
        }
    }
}
