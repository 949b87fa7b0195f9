//! Matmul (the language's `dot` on the tensor cores) on a GPU against the fp64 reference, through
//! the typed API: random ragged shapes × dtypes × `b` storages × padded rows × tilings, plus large
//! fixed cases with the default tiling. Skips, saying so, where there is no GPU.

use super::{executor, quick, run_all};
use tritonite::kernels::backend::Backend;
use tritonite::kernels::matmul::check::{run_case, Case};
use tritonite::kernels::matmul::{MatmulConfig, MatmulSpec};
use tritonite::lang::DType;

#[test]
fn matmul_matches_fp64_on_random_cases() {
    let Some(gpu) = executor() else { return };
    let count = if quick() { 12 } else { 120 };
    let cases: Vec<Case> = (0..count).map(|s| Case::random(7000 + s, 300, 600)).collect();
    let failures = run_all(&gpu, run_case, &cases);
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn matmul_matches_fp64_on_large_shapes() {
    let Some(gpu) = executor() else { return };
    let mut cases = vec![];
    for dtype in [DType::BF16, DType::F16] {
        for b_transposed in [false, true] {
            let spec = MatmulSpec { dtype, out: dtype, b_transposed };
            for (m, n, k) in [(512, 512, 512), (1000, 777, 1031), (16, 4096, 4096), (1, 4096, 512)] {
                cases.push(Case::new(m, n, k, spec, MatmulConfig::heuristic(m, n, k, gpu.sm_count())));
            }
        }
    }
    if quick() {
        cases.truncate(4);
    }
    let failures = run_all(&gpu, run_case, &cases);
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn rms_norm_linear_matches_fp64() {
    use tritonite::kernels::rmsnorm_linear::check::{run_case, Case};
    use tritonite::kernels::rmsnorm_linear::{heuristic, RmsNormLinearSpec};
    let Some(gpu) = executor() else { return };
    let count = if quick() { 8 } else { 60 };
    let mut cases: Vec<Case> = (0..count).map(|s| Case::random(9000 + s, 300, 1000)).collect();
    for dtype in [DType::BF16, DType::F16] {
        for m in [1, 16, 64, 256, 4096] {
            // The fp64 reference runs on the host: keep m·n·k near 2³⁰.
            let (n, k) = (if m == 4096 { 64 } else { 4096 }, 4096);
            cases.push(Case::new(m, n, k, RmsNormLinearSpec { dtype, out: dtype }, heuristic(m, n, k, gpu.sm_count())));
        }
    }
    let failures = run_all(&gpu, run_case, &cases);
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}
