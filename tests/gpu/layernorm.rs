//! LayerNorm forward and backward on a GPU against the fp64 reference, through the typed API:
//! random shapes × dtypes × weight/bias × strided views × caller outputs × configs (rows in
//! registers and chunked), plus fixed cases at the limits (N = 65536 and 262144, M = 65536).
//! Inputs are random, new outputs start as NaN. Skips, saying so, where there is no GPU.

use super::{executor, quick, run_all, MAX_ELEMENTS};
use tritonite::kernels::backend::Backend;
use tritonite::kernels::layernorm::check::{run_case, Case};
use tritonite::kernels::layernorm::{heuristic, heuristic_backward, LayerNormConfig, LayerNormSpec};
use tritonite::lang::DType;

#[test]
fn layernorm_matches_fp64_on_random_cases() {
    let Some(gpu) = executor() else { return };
    let count = if quick() { 12 } else { 120 };
    let cases: Vec<Case> = (0..count)
        .map(|s| {
            let mut c = Case::random(2000 + s, 3000, 70000, gpu.sm_count(), 16384);
            c.m = c.m.min(MAX_ELEMENTS / c.n);
            c
        })
        .collect();
    let failures = run_all(&gpu, run_case, &cases);
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn layernorm_matches_fp64_at_the_limits() {
    let Some(gpu) = executor() else { return };
    let sms = gpu.sm_count();
    // The heuristic config: forward and backward pick their own below, the case runs one config
    // for both, so run each shape twice (forward's and backward's heuristic).
    let mut cases = vec![];
    for d in [DType::F32, DType::F16, DType::BF16] {
        let full = LayerNormSpec::new(d, Some(DType::F32), Some(d));
        let plain = LayerNormSpec::new(d, None, None);
        for (m, n, spec) in [(4, 262144, full), (7, 65536, plain), (65536, 128, full), (1, 1, full), (257, 1000, plain)]
        {
            for config in [heuristic(n, d, sms), heuristic_backward(n, d, sms)] {
                cases.push(Case::new(m, n, spec, config));
            }
        }
        let strided = LayerNormConfig { block_size: 1024, num_warps: 4, rows: 2, programs: 2 * sms };
        cases.push(Case {
            pad: 3,
            view_offset: 1,
            caller_out: true,
            shift: 10.0,
            ..Case::new(300, 5000, full, strided)
        });
    }
    if quick() {
        cases.retain(|c| c.m * c.n <= 1 << 20);
    }
    let failures = run_all(&gpu, run_case, &cases);
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn layernorm_backward_is_deterministic_on_the_gpu() {
    let Some(gpu) = executor() else { return };
    let spec = LayerNormSpec::new(DType::BF16, Some(DType::F32), Some(DType::BF16));
    for (m, n, block) in [(1000, 3000, 4096), (300, 20000, 1024)] {
        let config = LayerNormConfig { block_size: block, num_warps: 8, rows: 1, programs: 2 * gpu.sm_count() };
        let case = Case::new(m, n, spec, config);
        let (a, b) = (run_case(&gpu, &case).unwrap(), run_case(&gpu, &case).unwrap());
        assert!(a.failures().is_empty(), "{case}: {}", a.summary());
        for (i, (p, q)) in a.outputs.iter().zip(&b.outputs).enumerate() {
            let same = p.to_f64().iter().zip(q.to_f64()).all(|(u, v)| u.to_bits() == v.to_bits());
            assert!(same, "{case}: output {i} differs between two identical runs");
        }
    }
}
